//! Daemon configuration: flags and a JSON file (a subset of dockerd's daemon.json).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

/// shoald flags.
#[derive(Debug, Parser)]
#[command(
    name = "shoald",
    version,
    about = "shoal: a swarm manager that speaks the Docker Engine API"
)]
pub struct Flags {
    /// Daemon socket(s) to listen on (unix:///path or tcp://host:port).
    #[arg(short = 'H', long = "host")]
    pub host: Vec<String>,
    /// Root directory of persistent state.
    #[arg(long = "data-root")]
    pub data_root: Option<PathBuf>,
    /// containerd socket (used by the executor).
    #[arg(long = "containerd")]
    pub containerd: Option<String>,
    /// Daemon configuration file (JSON).
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Log level: debug, info, warn, error.
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format")]
    pub log_format: Option<String>,
    /// Enable debug logging.
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Parent cgroup of every task container (dockerd's `--cgroup-parent`).
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Group of the Unix sockets (dockerd's `-G`).
    #[arg(short = 'G', long = "group")]
    pub group: Option<String>,
    /// Path of the file holding the daemon's PID.
    #[arg(short = 'p', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Use TLS on TCP listeners; implied by `--tlsverify`.
    #[arg(long = "tls", num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Use TLS and require clients to present a certificate from `--tlscacert`.
    #[arg(long = "tlsverify", num_args = 0..=1, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certificates signed by this CA only.
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Path to the TLS certificate file.
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Path to the TLS key file.
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Serve Prometheus metrics on this TCP address (`GET /metrics`).
    #[arg(long = "metrics-addr")]
    pub metrics_addr: Option<String>,
}

/// The daemon.json subset shoald reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Same as `-H`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Same as `--data-root`.
    #[serde(rename = "data-root")]
    pub data_root: Option<PathBuf>,
    /// Same as `--containerd`.
    pub containerd: Option<String>,
    /// Same as `--log-level`.
    #[serde(rename = "log-level")]
    pub log_level: Option<String>,
    /// Same as `--log-format`.
    #[serde(rename = "log-format")]
    pub log_format: Option<String>,
    /// Same as `--debug`.
    pub debug: Option<bool>,
    /// Same as `--cgroup-parent`.
    #[serde(rename = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Same as `--group`.
    pub group: Option<String>,
    /// Same as `--pidfile`.
    pub pidfile: Option<PathBuf>,
    /// Same as `--tls`.
    pub tls: Option<bool>,
    /// Same as `--tlsverify`.
    pub tlsverify: Option<bool>,
    /// Same as `--tlscacert`.
    pub tlscacert: Option<PathBuf>,
    /// Same as `--tlscert`.
    pub tlscert: Option<PathBuf>,
    /// Same as `--tlskey`.
    pub tlskey: Option<PathBuf>,
    /// Same as `--metrics-addr`.
    #[serde(rename = "metrics-addr")]
    pub metrics_addr: Option<String>,
}

impl FileConfig {
    /// Reads and checks the file at `path`.
    pub fn read(path: &std::path::Path) -> anyhow::Result<FileConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }

    /// The log level the file sets, if it sets one (`log-level`, or
    /// `debug: true`): what a reload on SIGHUP applies, as dockerd
    /// applies only the settings the file has.
    pub fn log_level(&self) -> Option<String> {
        match (&self.log_level, self.debug) {
            (Some(l), _) => Some(l.clone()),
            (None, Some(true)) => Some("debug".into()),
            (None, Some(false)) => Some("info".into()),
            (None, None) => None,
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen addresses.
    pub hosts: Vec<String>,
    /// Persistent state root.
    pub data_root: PathBuf,
    /// containerd socket.
    pub containerd: String,
    /// Log level.
    pub log_level: String,
    /// Log format.
    pub log_format: String,
    /// Parent cgroup of task containers: each one is at `<parent>/<id>`.
    pub cgroup_parent: String,
    /// Group owning the Unix sockets.
    pub group: String,
    /// The PID file.
    pub pidfile: PathBuf,
    /// TLS of TCP listeners.
    pub tls: TlsConfig,
    /// Where metrics are served, if anywhere.
    pub metrics_addr: Option<String>,
    /// The configuration file, read again on SIGHUP.
    pub config_file: Option<PathBuf>,
}

/// What TCP listeners do about TLS, as dockerd's flags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// TLS is on (`--tls`, or `--tlsverify` given at all).
    pub enabled: bool,
    /// Clients must present a certificate signed by `ca`.
    pub verify: bool,
    /// `--tls=false` or `--tlsverify=false` said explicitly: plain TCP is
    /// wanted, so the start is not slowed down to warn about it.
    pub explicitly_off: bool,
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
}

/// dockerd's default socket path for shoal.
pub const DEFAULT_HOST: &str = "unix:///run/shoal/docker.sock";
/// Default data root.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/shoal";
/// Default containerd socket.
pub const DEFAULT_CONTAINERD: &str = "/run/containerd/containerd.sock";
/// The socket group by default, as dockerd's.
pub const DEFAULT_GROUP: &str = "docker";
/// The PID file by default (with the default data root).
pub const DEFAULT_PIDFILE: &str = "/run/shoal/shoald.pid";
/// Default parent cgroup of task containers (dockerd's is `/docker`).
pub const DEFAULT_CGROUP_PARENT: &str = "/shoal";

impl Config {
    /// Merges flags over the config file over defaults. As with dockerd, a
    /// setting given both as a flag and in the file is an error.
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let file = match &flags.config_file {
            Some(p) => FileConfig::read(p)?,
            None => FileConfig::default(),
        };
        if !flags.host.is_empty() && !file.hosts.is_empty() {
            anyhow::bail!("the following directives are specified both as a flag and in the configuration file: hosts");
        }
        if flags.data_root.is_some() && file.data_root.is_some() {
            anyhow::bail!("the following directives are specified both as a flag and in the configuration file: data-root");
        }
        for (name, both) in [
            (
                "cgroup-parent",
                flags.cgroup_parent.is_some() && file.cgroup_parent.is_some(),
            ),
            ("group", flags.group.is_some() && file.group.is_some()),
            ("pidfile", flags.pidfile.is_some() && file.pidfile.is_some()),
            ("tls", flags.tls.is_some() && file.tls.is_some()),
            (
                "tlsverify",
                flags.tlsverify.is_some() && file.tlsverify.is_some(),
            ),
            (
                "tlscacert",
                flags.tlscacert.is_some() && file.tlscacert.is_some(),
            ),
            ("tlscert", flags.tlscert.is_some() && file.tlscert.is_some()),
            ("tlskey", flags.tlskey.is_some() && file.tlskey.is_some()),
            (
                "metrics-addr",
                flags.metrics_addr.is_some() && file.metrics_addr.is_some(),
            ),
        ] {
            if both {
                anyhow::bail!("the following directives are specified both as a flag and in the configuration file: {name}");
            }
        }
        let mut hosts = if flags.host.is_empty() {
            file.hosts
        } else {
            flags.host
        };
        if hosts.is_empty() {
            hosts.push(DEFAULT_HOST.into());
        }
        let debug = flags.debug || file.debug.unwrap_or(false);
        let data_root: PathBuf = flags
            .data_root
            .or(file.data_root)
            .unwrap_or_else(|| DEFAULT_DATA_ROOT.into());
        // Daemons with data roots of their own get PID files of their own.
        let pidfile = flags.pidfile.or(file.pidfile).unwrap_or_else(|| {
            if data_root == std::path::Path::new(DEFAULT_DATA_ROOT) {
                DEFAULT_PIDFILE.into()
            } else {
                data_root.join("shoald.pid")
            }
        });
        let group = flags.group.or(file.group);
        let tls = flags.tls.or(file.tls);
        let tlsverify = flags.tlsverify.or(file.tlsverify);
        let cert_dir = cert_dir();
        let tls = TlsConfig {
            // dockerd turns TLS on when --tlsverify is given at all.
            enabled: tls == Some(true) || tlsverify.is_some(),
            verify: tlsverify == Some(true),
            explicitly_off: tls == Some(false) || tlsverify == Some(false),
            ca: flags
                .tlscacert
                .or(file.tlscacert)
                .unwrap_or_else(|| cert_dir.join("ca.pem")),
            cert: flags
                .tlscert
                .or(file.tlscert)
                .unwrap_or_else(|| cert_dir.join("cert.pem")),
            key: flags
                .tlskey
                .or(file.tlskey)
                .unwrap_or_else(|| cert_dir.join("key.pem")),
        };
        Ok(Config {
            config_file: flags.config_file.clone(),
            metrics_addr: flags.metrics_addr.or(file.metrics_addr),
            hosts,
            data_root,
            group: group.unwrap_or_else(|| DEFAULT_GROUP.into()),
            pidfile,
            tls,
            containerd: flags
                .containerd
                .or(file.containerd)
                .unwrap_or_else(|| DEFAULT_CONTAINERD.into()),
            log_level: flags.log_level.or(file.log_level).unwrap_or_else(|| {
                if debug {
                    "debug".into()
                } else {
                    "info".into()
                }
            }),
            log_format: flags
                .log_format
                .or(file.log_format)
                .unwrap_or_else(|| "text".into()),
            cgroup_parent: flags
                .cgroup_parent
                .or(file.cgroup_parent)
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_CGROUP_PARENT.into()),
        })
    }
}

/// Where dockerd looks for its TLS files by default: `$DOCKER_CERT_PATH`,
/// else `~/.docker`.
fn cert_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKER_CERT_PATH").filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
        .join(".docker")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn load(args: &[&str], file: Option<&str>) -> anyhow::Result<Config> {
        let mut argv = vec!["shoald"];
        argv.extend_from_slice(args);
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let path = tmp.path().display().to_string();
        if let Some(text) = file {
            tmp.write_all(text.as_bytes()).unwrap();
            argv.extend_from_slice(&["--config-file", &path]);
            return Config::load(Flags::parse_from(argv));
        }
        Config::load(Flags::parse_from(argv))
    }

    #[test]
    fn cgroup_parent_defaults_to_shoal() {
        assert_eq!(load(&[], None).unwrap().cgroup_parent, "/shoal");
    }

    #[test]
    fn cgroup_parent_from_flag_or_file() {
        let c = load(&["--cgroup-parent", "/shoal-a"], None).unwrap();
        assert_eq!(c.cgroup_parent, "/shoal-a");
        let c = load(&[], Some(r#"{"cgroup-parent": "/shoal-b"}"#)).unwrap();
        assert_eq!(c.cgroup_parent, "/shoal-b");
    }

    #[test]
    fn tls_follows_dockerds_flags() {
        let c = load(&[], None).unwrap().tls;
        assert!(!c.enabled && !c.verify && !c.explicitly_off);
        let c = load(&["--tlsverify"], None).unwrap().tls;
        assert!(c.enabled && c.verify);
        // --tlsverify given at all turns TLS on, as dockerd does.
        let c = load(&["--tlsverify=false"], None).unwrap().tls;
        assert!(c.enabled && !c.verify && c.explicitly_off);
        let c = load(&["--tls"], None).unwrap().tls;
        assert!(c.enabled && !c.verify);
        let c = load(&["--tls=false"], None).unwrap().tls;
        assert!(!c.enabled && c.explicitly_off);
        let c = load(
            &[],
            Some(r#"{"tlsverify": true, "tlscacert": "/x/ca.pem"}"#),
        )
        .unwrap()
        .tls;
        assert!(c.verify && c.ca == std::path::Path::new("/x/ca.pem"));
        let e = load(&["--tlskey", "/k"], Some(r#"{"tlskey": "/j"}"#)).unwrap_err();
        assert!(e.to_string().contains("tlskey"), "{e}");
    }

    #[test]
    fn pidfile_and_group_defaults() {
        let c = load(&[], None).unwrap();
        assert_eq!(c.pidfile, std::path::Path::new(DEFAULT_PIDFILE));
        assert_eq!(c.group, "docker");
        let c = load(&["--data-root", "/srv/s", "-G", "wheel"], None).unwrap();
        assert_eq!(c.pidfile, std::path::Path::new("/srv/s/shoald.pid"));
        assert_eq!(c.group, "wheel");
    }

    #[test]
    fn cgroup_parent_given_both_ways_is_refused() {
        let e = load(
            &["--cgroup-parent", "/a"],
            Some(r#"{"cgroup-parent": "/b"}"#),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cgroup-parent"), "{e}");
    }
}
