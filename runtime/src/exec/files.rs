//! The files dockerd writes for each container and binds into it
//! (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`), and where an
//! overlayfs snapshot's layer directories are.

use std::path::Path;
use std::path::PathBuf;

use containerd_client::types::Mount;

use super::spec::ContainerFiles;

/// The label holding the container's Docker name (`web.1.<task id>`).
pub const NAME_LABEL: &str = "io.shoal.container.name";

/// Where the files of the container whose directory is `dir` live.
pub fn paths(dir: &Path) -> ContainerFiles {
    ContainerFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
    }
}

/// Writes the files: the hostname, an `/etc/hosts` naming it (on its
/// network addresses when it has some), and the resolver configuration the
/// network driver chose (the node's own without one).
pub fn write(
    files: &ContainerFiles,
    hostname: &str,
    netns: Option<&swarm::exec::TaskNetns>,
) -> std::io::Result<()> {
    std::fs::write(&files.hostname, format!("{hostname}\n"))?;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let own: Vec<&str> = netns
        .map(|n| {
            n.interfaces
                .iter()
                .map(|(_, a)| a.split('/').next().unwrap_or(a))
                .collect()
        })
        .unwrap_or_default();
    if own.is_empty() {
        hosts.push_str(&format!("127.0.0.1\t{hostname}\n"));
    }
    for a in own {
        hosts.push_str(&format!("{a}\t{hostname}\n"));
    }
    std::fs::write(&files.hosts, hosts)?;
    let resolv = match netns {
        Some(n) => n.resolv_conf.clone(),
        None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    std::fs::write(&files.resolv_conf, resolv)
}

/// Records when the container's process started (containerd keeps no
/// start time; `docker inspect` shows it).
pub fn record_start(dir: &Path) {
    let _ = std::fs::write(dir.join("started_at"), swarm::model::now());
}

/// When the container's process last started, if recorded.
pub fn started_at(dir: &Path) -> Option<time::OffsetDateTime> {
    let s = std::fs::read_to_string(dir.join("started_at")).ok()?;
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()
}

/// The directories of an image's layers from a snapshot's mounts, topmost
/// first: the lower directories of an overlay mount, or a bind's source.
pub fn layer_dirs(mounts: &[Mount]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in mounts {
        if m.r#type == "bind" {
            out.push(PathBuf::from(&m.source));
            continue;
        }
        for opt in &m.options {
            if let Some(upper) = opt.strip_prefix("upperdir=") {
                out.insert(0, PathBuf::from(upper));
            }
            if let Some(lower) = opt.strip_prefix("lowerdir=") {
                out.extend(lower.split(':').map(PathBuf::from));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_dirs_come_topmost_first() {
        let m = Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![
                "workdir=/w".into(),
                "upperdir=/u".into(),
                "lowerdir=/l2:/l1".into(),
            ],
        };
        assert_eq!(
            layer_dirs(&[m]),
            vec![PathBuf::from("/u"), "/l2".into(), "/l1".into()]
        );
    }
}
