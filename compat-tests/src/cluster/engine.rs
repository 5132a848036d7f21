//! Which engine a lab's nodes run, and the command line each one gets.

use std::path::Path;
use std::path::PathBuf;

/// The daemon every node of a lab runs beside its own containerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// shoal's daemon: `$SHOALD_BIN`, else the workspace's build.
    Shoald,
    /// Debian's `dockerd` (package docker.io, 20.10), the reference.
    Dockerd,
}

impl Engine {
    /// A short lowercase name, as on the bench's command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Shoald => "shoald",
            Engine::Dockerd => "dockerd",
        }
    }

    /// The program to start, or why it cannot be.
    pub fn binary(self) -> anyhow::Result<PathBuf> {
        match self {
            Engine::Shoald => shoald_bin(),
            Engine::Dockerd => {
                let p = PathBuf::from("/usr/sbin/dockerd");
                if p.is_file() {
                    return Ok(p);
                }
                anyhow::bail!("dockerd is not installed (apt-get install docker.io)")
            }
        }
    }

    /// The arguments after the program for a node whose files are under
    /// `paths`, with task containers under `cgroup_parent`.
    pub fn args(self, paths: &EnginePaths, cgroup_parent: &str) -> Vec<String> {
        let s = |p: &Path| p.display().to_string();
        let mut args = vec![
            "--containerd".to_string(),
            s(&paths.containerd),
            "--data-root".into(),
            s(&paths.data_root),
            "--host".into(),
            format!("unix://{}", paths.socket.display()),
            "--cgroup-parent".into(),
            cgroup_parent.into(),
        ];
        if self == Engine::Dockerd {
            // The exec root and pid file sit in the node's private /run:
            // libnetwork's socket paths under the exec root are long, and a
            // node's /run is its own anyway. No bridge, no iptables: the
            // lab's nodes are not the host, and a default bridge per node
            // would only add links.
            args.extend(
                [
                    "--exec-root",
                    "/run/docker",
                    "--pidfile",
                    "/run/docker.pid",
                    "--bridge",
                    "none",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--config-file",
                ]
                .map(str::to_string),
            );
            args.push(s(&paths.config_file));
        }
        args
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Engine {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Engine> {
        match s {
            "shoald" => Ok(Engine::Shoald),
            "dockerd" => Ok(Engine::Dockerd),
            other => anyhow::bail!("unknown engine {other:?} (shoald or dockerd)"),
        }
    }
}

/// Where one node's engine keeps its things.
#[derive(Debug, Clone)]
pub struct EnginePaths {
    /// The node's containerd socket.
    pub containerd: PathBuf,
    /// The engine's data root.
    pub data_root: PathBuf,
    /// The engine's API socket (reachable from the host).
    pub socket: PathBuf,
    /// An empty daemon.json, so a host's /etc/docker/daemon.json is never
    /// read by a lab's dockerd.
    pub config_file: PathBuf,
}

/// The shoald binary: `$SHOALD_BIN` (a relative path is from the workspace
/// root when it does not exist from here), else the workspace's debug, then
/// release build.
pub fn shoald_bin() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Ok(p) = std::env::var("SHOALD_BIN") {
        let p = PathBuf::from(p);
        if p.is_relative() && !p.exists() {
            return Ok(root.join(p));
        }
        return Ok(p);
    }
    for profile in ["debug", "release"] {
        let p = root.join("target").join(profile).join("shoald");
        if p.exists() {
            return Ok(p);
        }
    }
    anyhow::bail!("shoald not built: run `cargo build -p engine-api` or set SHOALD_BIN")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> EnginePaths {
        EnginePaths {
            containerd: "/l/n1/c.sock".into(),
            data_root: "/l/n1/engine".into(),
            socket: "/l/n1/docker.sock".into(),
            config_file: "/l/n1/daemon.json".into(),
        }
    }

    #[test]
    fn both_engines_get_their_own_cgroup_parent_and_sockets() {
        for e in [Engine::Shoald, Engine::Dockerd] {
            let a = e.args(&paths(), "/shoal-lab-node1").join(" ");
            assert!(a.contains("--cgroup-parent /shoal-lab-node1"), "{a}");
            assert!(a.contains("--host unix:///l/n1/docker.sock"), "{a}");
            assert!(a.contains("--containerd /l/n1/c.sock"), "{a}");
        }
        let d = Engine::Dockerd.args(&paths(), "/x").join(" ");
        assert!(d.contains("--bridge none --iptables=false"), "{d}");
        assert!(!Engine::Shoald
            .args(&paths(), "/x")
            .join(" ")
            .contains("--bridge"));
    }

    #[test]
    fn engine_names_round_trip() {
        for e in [Engine::Shoald, Engine::Dockerd] {
            assert_eq!(e.name().parse::<Engine>().unwrap(), e);
        }
        assert!("podman".parse::<Engine>().is_err());
    }
}
