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
}

/// dockerd's default socket path for shoal.
pub const DEFAULT_HOST: &str = "unix:///run/shoal/docker.sock";
/// Default data root.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/shoal";
/// Default containerd socket.
pub const DEFAULT_CONTAINERD: &str = "/run/containerd/containerd.sock";
/// Default parent cgroup of task containers (dockerd's is `/docker`).
pub const DEFAULT_CGROUP_PARENT: &str = "/shoal";

impl Config {
    /// Merges flags over the config file over defaults. As with dockerd, a
    /// setting given both as a flag and in the file is an error.
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let file = match &flags.config_file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                serde_json::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid configuration file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        if !flags.host.is_empty() && !file.hosts.is_empty() {
            anyhow::bail!("the following directives are specified both as a flag and in the configuration file: hosts");
        }
        if flags.data_root.is_some() && file.data_root.is_some() {
            anyhow::bail!("the following directives are specified both as a flag and in the configuration file: data-root");
        }
        if flags.cgroup_parent.is_some() && file.cgroup_parent.is_some() {
            anyhow::bail!("the following directives are specified both as a flag and in the configuration file: cgroup-parent");
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
        Ok(Config {
            hosts,
            data_root: flags
                .data_root
                .or(file.data_root)
                .unwrap_or_else(|| DEFAULT_DATA_ROOT.into()),
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
    fn cgroup_parent_given_both_ways_is_refused() {
        let e = load(
            &["--cgroup-parent", "/a"],
            Some(r#"{"cgroup-parent": "/b"}"#),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cgroup-parent"), "{e}");
    }
}
