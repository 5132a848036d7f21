//! A slow disk under one node's engine: its data root moved onto an ext4
//! filesystem on a loop device, and the engine's writes to that device
//! throttled by the kernel's block-I/O throttle (cgroup v1 `blkio`), so
//! every fsync of its raft log really waits.
//!
//! The loop device is attached with `mount -o loop` inside the node's own
//! mount namespace, which marks it auto-clearing: when the node dies (or
//! the lab is torn down) the filesystem goes with the namespace and the
//! kernel detaches the device. The throttled cgroup sits under the node's
//! own cgroup parent, which the lab removes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::Node;

/// Where the v1 block-I/O hierarchy is mounted.
const BLKIO: &str = "/sys/fs/cgroup/blkio";

/// The size of the filesystem (sparse: only what is written takes room).
const SIZE: &str = "512M";

/// A node whose data root lives on a loop device the test can throttle.
#[derive(Debug)]
pub struct SlowDisk {
    node: Arc<Node>,
    /// `MAJ:MIN` of the loop device.
    dev: String,
    /// The blkio cgroup the engine is moved into.
    cgroup: PathBuf,
}

impl SlowDisk {
    /// Why a slow disk cannot be made on this machine, if it cannot.
    pub fn missing() -> Option<String> {
        let throttle = PathBuf::from(BLKIO).join("blkio.throttle.write_iops_device");
        if !throttle.exists() {
            return Some(format!(
                "no cgroup v1 block-I/O throttle ({} is missing)",
                throttle.display()
            ));
        }
        if !std::path::Path::new("/dev/loop-control").exists() {
            return Some("no loop devices (/dev/loop-control is missing)".into());
        }
        ["mkfs.ext4", "findmnt", "mount", "truncate"]
            .into_iter()
            .find(|b| !super::procs::on_path(b))
            .map(|b| format!("{b} is not installed"))
    }

    /// Moves `node`'s data root onto a new loop-backed ext4 filesystem: the
    /// engine is stopped for the copy and started again on it (not yet
    /// throttled). Returns once the engine answers.
    pub fn attach(node: Arc<Node>) -> anyhow::Result<SlowDisk> {
        if let Some(why) = SlowDisk::missing() {
            anyhow::bail!("cannot make a slow disk here: {why}");
        }
        let root = node.data_root();
        let image = node.dir().join("slowdisk.img");
        let staging = node.dir().join("slowdisk.mnt");
        node.stop_engine(Duration::from_secs(20));
        // Inside the node, so the mounts live and die with its namespace.
        let script = "set -e; truncate -s \"$4\" \"$1\"; \
             mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 \"$1\"; \
             mkdir -p \"$3\"; mount -o loop \"$1\" \"$3\"; cp -a \"$2\"/. \"$3\"/; \
             mount --move \"$3\" \"$2\"; findmnt -n -o MAJ:MIN --target \"$2\"";
        let (img, r, st) = (
            image.display().to_string(),
            root.display().to_string(),
            staging.display().to_string(),
        );
        let out = node.run(&["sh", "-c", script, "sh", &img, &r, &st, SIZE]);
        anyhow::ensure!(
            out.success(),
            "move the data root onto a loop device: {out:?}"
        );
        let dev = out.stdout.trim().to_string();
        anyhow::ensure!(
            dev.starts_with("7:"),
            "the data root is not on a loop device: {dev}"
        );
        let cgroup = PathBuf::from(BLKIO)
            .join(node.cgroup_parent().trim_start_matches('/'))
            .join("slowdisk");
        std::fs::create_dir_all(&cgroup).with_context(|| format!("make {}", cgroup.display()))?;
        node.start_engine()?;
        Ok(SlowDisk { node, dev, cgroup })
    }

    /// The loop device, `MAJ:MIN`.
    pub fn device(&self) -> &str {
        &self.dev
    }

    /// Limits the engine's writes to the device to `iops` requests a
    /// second (0: no limit). The engine is moved into the throttled cgroup
    /// first (again after a restart of the engine).
    pub fn throttle(&self, iops: u32) -> anyhow::Result<()> {
        let pid = self
            .node
            .pid_of_engine()
            .context("the node's engine is not running")?;
        std::fs::write(self.cgroup.join("cgroup.procs"), pid.to_string())
            .context("move the engine into the throttled cgroup")?;
        std::fs::write(
            self.cgroup.join("blkio.throttle.write_iops_device"),
            format!("{} {iops}", self.dev),
        )
        .context("set the write throttle")
    }

    /// How long `count` synchronous 4 KiB writes to the data root take for
    /// a process in the engine's throttled cgroup (a `dd` in the node).
    pub fn probe(&self, count: u32) -> anyhow::Result<Duration> {
        let script = "echo $$ > \"$1/cgroup.procs\" && \
             dd if=/dev/zero of=\"$2/.slowdisk-probe\" bs=4k count=\"$3\" oflag=dsync 2>/dev/null; \
             r=$?; rm -f \"$2/.slowdisk-probe\"; exit $r";
        let (cg, root) = (
            self.cgroup.display().to_string(),
            self.node.data_root().display().to_string(),
        );
        let started = std::time::Instant::now();
        let out = self
            .node
            .run(&["sh", "-c", script, "sh", &cg, &root, &count.to_string()]);
        anyhow::ensure!(out.success(), "the probe failed: {out:?}");
        Ok(started.elapsed())
    }

    /// How many write requests the engine's cgroup sent to the device.
    pub fn writes(&self) -> u64 {
        let stats = std::fs::read_to_string(self.cgroup.join("blkio.throttle.io_serviced"))
            .unwrap_or_default();
        stats
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(self.dev.as_str()) && f.next() == Some("Write"))
                    .then(|| f.next()?.parse().ok())
                    .flatten()
            })
            .unwrap_or(0)
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // Lifted, so that nothing the lab's teardown does waits on it; the
        // cgroup itself goes with the node's cgroup parent.
        let _ = std::fs::write(
            self.cgroup.join("blkio.throttle.write_iops_device"),
            format!("{} 0", self.dev),
        );
    }
}
