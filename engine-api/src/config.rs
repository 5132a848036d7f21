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
}

/// dockerd's default socket path for shoal.
pub const DEFAULT_HOST: &str = "unix:///run/shoal/docker.sock";
/// Default data root.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/shoal";
/// Default containerd socket.
pub const DEFAULT_CONTAINERD: &str = "/run/containerd/containerd.sock";

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
        })
    }
}
