//! End-to-end: a damaged raft log or snapshot in the data root of a stopped
//! shoald is refused at start (exit status 1, a message naming the file and
//! what to do), never loaded and never a panic; the intact data root starts
//! again with every acknowledged write.

mod common;

use std::path::Path;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use common::shoald_bin;
use common::Daemon;

/// One way to damage a file of the stopped daemon's data root.
struct Damage {
    name: &'static str,
    file: &'static str,
    apply: fn(&Path),
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn cut(path: &Path, keep: usize) {
    let b = std::fs::read(path).unwrap();
    std::fs::write(path, &b[..keep.min(b.len())]).unwrap();
}

const DAMAGES: &[Damage] = &[
    Damage {
        name: "a flipped byte in the snapshot",
        file: "snapshot.bin",
        apply: |p| flip(p, std::fs::metadata(p).unwrap().len() as usize / 2),
    },
    Damage {
        name: "the snapshot cut in half",
        file: "snapshot.bin",
        apply: |p| cut(p, std::fs::metadata(p).unwrap().len() as usize / 2),
    },
    Damage {
        name: "the log's header overwritten",
        file: "log.redb",
        apply: |p| flip(p, 0),
    },
    Damage {
        // redb asserts on a region header it cannot parse.
        name: "the log's first region header overwritten",
        file: "log.redb",
        apply: |p| {
            for at in 4096..4160 {
                flip(p, at)
            }
        },
    },
    Damage {
        name: "the log cut to a quarter",
        file: "log.redb",
        apply: |p| cut(p, std::fs::metadata(p).unwrap().len() as usize / 4),
    },
    Damage {
        name: "the log emptied",
        file: "log.redb",
        apply: |p| cut(p, 0),
    },
];

/// Runs shoald on `d`'s data root (stopped) and returns its exit code and
/// stderr once it ends (bounded: 60 s).
fn start_and_wait_for_exit(d: &Daemon) -> (Option<i32>, String) {
    let log = d.dir.path().join("damaged-start.log");
    let mut cmd = match d.node() {
        Some(n) => n.command(shoald_bin()),
        None => Command::new(shoald_bin()),
    };
    let mut child = cmd
        .arg("--host")
        .arg(format!(
            "unix://{}",
            d.dir.path().join("other.sock").display()
        ))
        .arg("--data-root")
        .arg(d.data_root())
        .arg("--containerd")
        .arg(d.dir.path().join("no-containerd.sock"))
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn shoald");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (status.and_then(|s| s.code()), text)
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn damaged_raft_files_are_refused_at_start_and_the_intact_root_starts() {
    let mut d = Daemon::with_swarm();
    // Snapshots every 5 entries, so the data root has one to damage.
    d.ok(&["swarm", "update", "--snapshot-interval", "5"]);
    let mut ids = Vec::new();
    for i in 0..12 {
        let f = common::temp_file(&d, &format!("s{i}"), common::marker("v").as_bytes());
        ids.push(
            d.ok(&["secret", "create", &format!("s{i}"), &f])
                .trim()
                .to_string(),
        );
    }
    d.stop();
    let raft = d.data_root().join("swarm/raft");
    assert!(raft.join("snapshot.bin").exists(), "no snapshot was taken");
    let backup = d.dir.path().join("swarm-backup");
    copy_dir(&d.data_root().join("swarm"), &backup);
    let mut refused = 0;
    for damage in DAMAGES {
        std::fs::remove_dir_all(d.data_root().join("swarm")).unwrap();
        copy_dir(&backup, &d.data_root().join("swarm"));
        let file = raft.join(damage.file);
        (damage.apply)(&file);
        let (code, stderr) = start_and_wait_for_exit(&d);
        assert_eq!(
            code,
            Some(1),
            "{}: shoald did not refuse to start with status 1 (a panic is 101, a hang None):\n{stderr}",
            damage.name
        );
        assert!(
            stderr.contains(&format!("raft data file {} is damaged", file.display()))
                && stderr.contains("Restore")
                && !stderr.contains("panicked"),
            "{}: unclear refusal:\n{stderr}",
            damage.name
        );
        eprintln!(
            "{}: {}",
            damage.name,
            stderr.trim_end().lines().last().unwrap_or("")
        );
        refused += 1;
    }
    eprintln!("{refused} of {} damaged data roots refused", DAMAGES.len());
    // The refusals changed nothing: the intact copy starts with every write.
    std::fs::remove_dir_all(d.data_root().join("swarm")).unwrap();
    copy_dir(&backup, &d.data_root().join("swarm"));
    d.restart();
    let listed = d.ok(&["secret", "ls", "-q"]);
    for id in &ids {
        assert!(listed.contains(id.as_str()), "secret {id} lost: {listed}");
    }
}
