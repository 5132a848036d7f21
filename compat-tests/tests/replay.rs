//! Replays every api-fixtures scenario against a live shoald and fails on a
//! difference that `api-fixtures/KNOWN_DIFFERENCES.md` does not list.
//!
//! Skipped (with the reason printed) unless `SHOALD_BIN` names a shoald
//! binary. Each scenario gets a fresh shoald:
//! `$SHOALD_BIN --host unix://$TMP/docker.sock --data-root $TMP/data $SHOALD_ARGS`.
//! `SHOAL_COMPAT_ONLY=01,04` limits the scenarios; `SHOAL_COMPAT_NO_PACE=1`
//! sends requests back to back instead of at the recorded times.
//! `SHOAL_COMPAT_REPORT_ONLY=1` prints the differences without failing (for
//! a CI that must not block on compatibility work in progress).

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use compat_tests::replay;
use compat_tests::replay::report::KnownDifferences;
use compat_tests::replay::report::Report;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api-fixtures")
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_shoald(bin: &str, dir: &Path) -> Daemon {
    let sock = dir.join("docker.sock");
    let mut cmd = Command::new(bin);
    cmd.arg("--host")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.join("data"));
    if let Ok(extra) = std::env::var("SHOALD_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    let log = std::fs::File::create(dir.join("shoald.log")).expect("log file");
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start shoald");
    Daemon { child }
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

    let mut report = Report::default();
    for scenario in &scenarios {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = start_shoald(&bin, dir.path());
        let sock = dir.path().join("docker.sock");
        assert!(
            wait_for_ping(&sock).await,
            "shoald did not answer /_ping; see {}",
            dir.path().join("shoald.log").display()
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
        drop(daemon);
    }
    print!("{}", report.render(&known, false));
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
