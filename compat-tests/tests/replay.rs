//! Replays every api-fixtures scenario against a live shoald and fails on a
//! difference that `api-fixtures/KNOWN_DIFFERENCES.md` does not list.
//!
//! Skipped (with the reason printed) unless `SHOALD_BIN` names a shoald
//! binary. Each scenario gets a fresh temp dir, a private containerd in it
//! (own config, socket, root and state, as the end-to-end tests start one)
//! and a fresh shoald on that containerd, so the test image loads and swarm
//! tasks really run:
//! `$SHOALD_BIN --host unix://$TMP/docker.sock --data-root $TMP/data
//! --containerd $TMP/containerd/c.sock $SHOALD_ARGS`.
//! When this machine cannot run containerd (not root, or `containerd`/`ctr`
//! missing) shoald starts without one and tasks never run, so the
//! differences listed for running tasks change; with
//! `SHOAL_REQUIRE_CONTAINERD` set that is a failure instead. `--containerd`
//! in `SHOALD_ARGS` replaces the private containerd.
//!
//! After each scenario the tasks it ran are killed and deleted, then shoald
//! and containerd are stopped by the PIDs started here and whatever is still
//! mounted under the temp dir (secret tmpfs, rootfs) is lazily unmounted.
//!
//! `SHOAL_COMPAT_ONLY=01,04` limits the scenarios; `SHOAL_COMPAT_NO_PACE=1`
//! sends requests back to back instead of at the recorded times.
//! `SHOAL_COMPAT_SHOW_KNOWN=1` also prints the accepted differences with
//! their reasons; after a full run the known entries that accepted nothing
//! are printed (stale ones to remove).
//! `SHOAL_COMPAT_REPORT_ONLY=1` prints the differences without failing (for
//! a CI that must not block on compatibility work in progress).

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

mod common;

use common::unmount_under;
use common::Containerd;
use compat_tests::replay;
use compat_tests::replay::report::KnownDifferences;
use compat_tests::replay::report::Report;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api-fixtures")
}

/// One scenario's daemons: a private containerd (when there is one, from
/// the shared harness) and shoald under `dir`. Dropping it tears everything
/// down.
struct Stack {
    dir: tempfile::TempDir,
    containerd: Option<Containerd>,
    shoald: Option<Child>,
}

impl Stack {
    fn start_shoald(&mut self, bin: &str) {
        let dir = self.dir.path();
        // In the containerd's node namespaces: the network driver plumbs
        // tasks wherever shoald runs.
        let mut cmd = match &self.containerd {
            Some(c) => c.node.command(bin),
            None => Command::new(bin),
        };
        cmd.arg("--host")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--data-root")
            .arg(dir.join("data"));
        if let Some(c) = &self.containerd {
            cmd.arg("--containerd").arg(c.socket());
        }
        if let Ok(extra) = std::env::var("SHOALD_ARGS") {
            cmd.args(extra.split_whitespace());
        }
        let log = std::fs::File::create(dir.join("shoald.log")).expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shoald");
        self.shoald = Some(child);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // shoald first (SIGKILL, as before), so that nothing restarts the
        // tasks containerd's teardown kills next; the containers outlive it.
        if let Some(mut c) = self.shoald.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(self.containerd.take());
        unmount_under(self.dir.path());
    }
}

/// Waits (at most 30 s) until `GET /_ping` on the socket answers 200.
async fn wait_for_ping(sock: &Path) -> bool {
    for _ in 0..300 {
        if let Ok(mut s) = tokio::net::UnixStream::connect(sock).await {
            let req =
                b"GET /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: close\r\n\r\n";
            if s.write_all(req).await.is_ok() {
                let mut buf = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
                if read.is_ok() && buf.starts_with(b"HTTP/1.1 200") {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoald_matches_recorded_dockerd_traffic() {
    let Ok(bin) = std::env::var("SHOALD_BIN") else {
        eprintln!("skipped: set SHOALD_BIN to a shoald binary to replay api-fixtures against it");
        return;
    };
    let only: Vec<String> = std::env::var("SHOAL_COMPAT_ONLY")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let scenarios =
        replay::cassette::load_all(&fixtures().join("scenarios"), &only).expect("load scenarios");
    assert!(!scenarios.is_empty(), "no scenarios found");
    let known = KnownDifferences::load(&fixtures().join("KNOWN_DIFFERENCES.md"))
        .expect("known differences");
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = tmp.path().join("image.tar");
    replay::build_test_image(&fixtures().join("scenarios"), &image).expect("build test image");

    let own_containerd = !std::env::var("SHOALD_ARGS").is_ok_and(|a| a.contains("--containerd"));
    let with_containerd = own_containerd
        && match common::containerd_missing() {
            None => true,
            Some(why) if std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_some() => {
                panic!("containerd is required here: {why}")
            }
            Some(why) => {
                eprintln!(
                    "no private containerd ({why}): tasks will not run, so the differences \
                     listed for running tasks will not match"
                );
                false
            }
        };

    let mut report = Report::default();
    for scenario in &scenarios {
        let mut stack = Stack {
            dir: tempfile::Builder::new()
                .prefix("shoal-replay")
                .tempdir()
                .expect("tempdir"),
            containerd: None,
            shoald: None,
        };
        if with_containerd {
            stack.containerd = Containerd::start();
        }
        stack.start_shoald(&bin);
        let sock = stack.dir.path().join("docker.sock");
        assert!(
            wait_for_ping(&sock).await,
            "shoald did not answer /_ping; see {}",
            stack.dir.path().join("shoald.log").display()
        );
        let mut opts = replay::Options::new(&sock);
        opts.image_tar = Some(image.clone());
        opts.pace = std::env::var("SHOAL_COMPAT_NO_PACE").is_err();
        opts.request_timeout = Duration::from_secs(30);
        eprintln!(
            "== {} ({} exchanges)",
            scenario.name,
            scenario.exchanges.len()
        );
        report
            .results
            .extend(replay::replay_scenario(scenario, &opts).await);
        drop(stack);
    }
    print!(
        "{}",
        report.render(
            &known,
            std::env::var_os("SHOAL_COMPAT_SHOW_KNOWN").is_some()
        )
    );
    if only.is_empty() {
        for k in report.unused_known(&known) {
            println!("known difference did not occur: `{}`", k.pattern);
        }
    }
    let summary = report.summary(&known);
    println!("{}", Report::closing_line(&summary));
    if summary.unlisted > 0 && std::env::var("SHOAL_COMPAT_REPORT_ONLY").is_ok() {
        eprintln!(
            "{} unlisted difference(s); not failing because SHOAL_COMPAT_REPORT_ONLY is set",
            summary.unlisted
        );
        return;
    }
    assert_eq!(
        summary.unlisted, 0,
        "differences not listed in api-fixtures/KNOWN_DIFFERENCES.md (see above)"
    );
}
