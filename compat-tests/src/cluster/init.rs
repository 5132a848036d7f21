//! The shell script a node's PID-namespace init runs: it makes the node's
//! mount namespace look like a machine of its own, starts the node's
//! containerd and then blocks on the lab's lifeline.
//!
//! It runs as the only child of `tini` (PID 1 of the node's PID namespace),
//! so when it ends, tini ends and the kernel kills everything else in the
//! namespace: engine, containerd, shims and task containers. It ends when
//! the lifeline FIFO reaches end-of-file, which happens when the process
//! that owns the lab (its only writer) exits, however it exits.

use std::path::Path;

/// The arguments the script reads, in order (`$1`..).
#[derive(Debug, Clone)]
pub struct InitArgs<'a> {
    /// The node's directory (under the lab's temp dir).
    pub node_dir: &'a Path,
    /// The lab's lifeline FIFO.
    pub lifeline: &'a Path,
    /// The node's hostname.
    pub hostname: &'a str,
    /// containerd's config file.
    pub containerd_config: &'a Path,
    /// containerd's socket (under `node_dir`, reachable from the host).
    pub containerd_socket: &'a Path,
    /// containerd's persistent root (under `node_dir`).
    pub containerd_root: &'a Path,
}

impl InitArgs<'_> {
    /// The script's positional arguments.
    pub fn to_vec(&self) -> Vec<String> {
        [
            self.node_dir,
            self.lifeline,
            Path::new(self.hostname),
            self.containerd_config,
            self.containerd_socket,
            self.containerd_root,
        ]
        .iter()
        .map(|p| p.display().to_string())
        .collect()
    }
}

/// The file the script creates once the node's mounts are in place.
pub const READY_FILE: &str = "init.ready";

/// The script (for `sh -c SCRIPT sh ARGS...`).
///
/// Why each step:
/// - the lifeline is opened first, so a lab that dies during start-up is
///   seen too;
/// - `/sys/fs/cgroup` is rbind-saved before sysfs is mounted again (a new
///   sysfs shows this network namespace's links, which dockerd and netlink
///   users read) and bound back after it, for runc;
/// - `/run` is a private tmpfs: runc state, shim sockets and containerd's
///   state are per node and vanish with it, as on a reboot;
/// - `/etc/docker` (dockerd's trust key) is shadowed by a node directory
///   when it exists, so two dockerds never share an identity;
/// - containerd's state dir is in that /run, its root in the node dir.
pub const SCRIPT: &str = r#"set -eu
node="$1"; lifeline="$2"; name="$3"; ccfg="$4"; csock="$5"; croot="$6"
exec 3<"$lifeline"
hostname "$name"
mkdir -p "$node/cgsave" "$node/etc-docker"
mount --rbind /sys/fs/cgroup "$node/cgsave"
mount -t sysfs sysfs /sys
mount --rbind "$node/cgsave" /sys/fs/cgroup
umount -l "$node/cgsave"
mount -t tmpfs -o mode=0755 tmpfs /run
if [ -d /etc/docker ]; then mount --bind "$node/etc-docker" /etc/docker; fi
: > "$node/init.ready"
containerd --config "$ccfg" --address "$csock" --root "$croot" --state /run/containerd-state \
    >>"$node/containerd.log" 2>&1 &
exec cat <&3 >/dev/null
"#;

/// containerd's config for a node: CRI off (it would want its own CNI and
/// ports), plugins' `opt` dir under the node.
pub fn containerd_config(node_dir: &Path) -> String {
    format!(
        "version = 2\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
        node_dir.join("containerd-opt").display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_in_the_scripts_order() {
        let a = InitArgs {
            node_dir: Path::new("/l/node1"),
            lifeline: Path::new("/l/lifeline"),
            hostname: "node1",
            containerd_config: Path::new("/l/node1/c.toml"),
            containerd_socket: Path::new("/l/node1/c.sock"),
            containerd_root: Path::new("/l/node1/croot"),
        };
        let v = a.to_vec();
        assert_eq!(v[0], "/l/node1");
        assert_eq!(v[2], "node1");
        assert_eq!(v[4], "/l/node1/c.sock");
        assert!(SCRIPT.contains("croot=\"$6\""));
        assert!(SCRIPT.contains(READY_FILE));
    }

    #[test]
    fn containerd_runs_without_cri() {
        let c = containerd_config(Path::new("/l/node1"));
        assert!(c.contains("io.containerd.grpc.v1.cri"));
        assert!(c.contains("/l/node1/containerd-opt"));
    }
}
