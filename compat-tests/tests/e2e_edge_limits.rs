//! End-to-end: the API edge under bad input and load. Oversized bodies get
//! a 413 with memory bounded, invalid UTF-8 is read as dockerd reads it,
//! 10,000 idle connections neither stop others nor cost much memory, and
//! running out of descriptors never ends the daemon.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::wait_for;
use common::Daemon;
use nix::sys::resource::getrlimit;
use nix::sys::resource::setrlimit;
use nix::sys::resource::Resource;

fn pid(d: &Daemon) -> u32 {
    std::fs::read_to_string(d.data_root().join("shoald.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// POSTs the file `body` with curl (bounded: 60 s); returns (status, body).
fn post_file(d: &Daemon, path: &str, body: &std::path::Path, headers: &[&[u8]]) -> (u16, String) {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-g",
        "--max-time",
        "60",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--unix-socket")
    .arg(d.socket())
    .args(["-X", "POST", "-H", "Content-Type: application/json"]);
    for h in headers {
        cmd.arg("-H").arg(std::ffi::OsStr::from_bytes(h));
    }
    let out = cmd
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn oversized_bodies_get_413_with_memory_bounded() {
    let d = Daemon::with_swarm();
    let pid = pid(&d);
    let before = rss_kb(pid);
    let mut tried = 0;
    for (name, mib) in [("3 MiB", 3usize), ("64 MiB", 64)] {
        let f = d.dir.path().join("big.json");
        let mut body = br#"{"Name":"big","Labels":{"a":""#.to_vec();
        body.resize(mib << 20, b'x');
        body.extend_from_slice(br#""}}"#);
        std::fs::write(&f, &body).unwrap();
        for headers in [&[][..], &[&b"Transfer-Encoding: chunked"[..]][..]] {
            let (code, text) = post_file(&d, "/v1.41/secrets/create", &f, headers);
            assert_eq!(code, 413, "{name} {headers:?}: {text}");
            assert!(text.contains("request body is too large"), "{text}");
            tried += 1;
        }
    }
    let after = rss_kb(pid);
    assert!(
        after < before + 64 * 1024,
        "oversized bodies took {} kB (from {before} kB)",
        after.saturating_sub(before)
    );
    d.ok(&["secret", "ls"]);
    eprintln!("{tried} oversized bodies: 413; memory {before} kB before, {after} kB after");
}

#[test]
fn invalid_utf8_is_read_as_dockerd_reads_it() {
    let d = Daemon::with_swarm();
    // In a JSON string: Go reads each bad byte as U+FFFD.
    let f = d.dir.path().join("bad.json");
    std::fs::write(
        &f,
        b"{\"Name\":\"s1\",\"Labels\":{\"k\":\"a\xff\xfeb\"},\"Data\":\"eA==\"}",
    )
    .unwrap();
    let (code, text) = post_file(&d, "/v1.41/secrets/create", &f, &[]);
    assert_eq!(code, 201, "{text}");
    let label = d.ok(&[
        "secret",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"k\"}}",
        "s1",
    ]);
    assert_eq!(label.trim(), "a\u{FFFD}\u{FFFD}b");
    // Outside a string: a syntax error, 400.
    std::fs::write(&f, b"{\xff\"Name\":\"s2\"}").unwrap();
    let (code, text) = post_file(&d, "/v1.41/secrets/create", &f, &[]);
    assert_eq!(code, 400, "{text}");
    // In a query string and in a header: no match, and ignored.
    let (code, text) = d.curl(
        "GET",
        "/v1.41/secrets?filters=%7B%22name%22%3A%7B%22%FF%FE%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!((code, text.trim()), (200, "[]"));
    let (code, _) = d.curl("GET", "/v1.41/secrets?%FF%FE=%C0", None);
    assert_eq!(code, 200);
    std::fs::write(
        &f,
        br#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"},"Placement":{"Constraints":["node.labels.none==1"]}}}"#,
    )
    .unwrap();
    // Bytes past ASCII in a header value are taken (and this one is no
    // valid auth, which a service create ignores); a control byte is the
    // HTTP parser's 400, as in Go's server.
    let (code, text) = post_file(
        &d,
        "/v1.41/services/create",
        &f,
        &[b"X-Registry-Auth: \xff\xfe\xc0"],
    );
    assert_eq!(code, 201, "{text}");
    let (code, _) = post_file(
        &d,
        "/v1.41/services/create",
        &f,
        &[b"X-Registry-Auth: a\x01b"],
    );
    assert_eq!(code, 400);
}

/// Raises this process's descriptor limit to its hard limit and returns it.
fn raise_limit() -> u64 {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("raise the limit");
    hard
}

#[test]
fn ten_thousand_idle_connections_leave_others_served() {
    let hard = raise_limit();
    let count = 10_000.min(hard.saturating_sub(500) as usize);
    let d = Daemon::start();
    let pid = pid(&d);
    let before = rss_kb(pid);
    let idle: Vec<UnixStream> = (0..count)
        .map(|_| UnixStream::connect(d.socket()).expect("connect"))
        .collect();
    // Every connection reaches the daemon (a descriptor each there).
    wait_for(60, "the idle connections accepted", || {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
        (fds >= count).then_some(())
    });
    for _ in 0..5 {
        d.ok(&["version", "--format", "{{.Server.Os}}"]);
    }
    let during = rss_kb(pid);
    assert!(
        during < before + 200 * 1024,
        "{count} idle connections took {} kB (from {before} kB)",
        during.saturating_sub(before)
    );
    eprintln!(
        "{count} idle connections: {} kB more memory ({} B each); others served",
        during.saturating_sub(before),
        during.saturating_sub(before) * 1024 / count as u64
    );
    drop(idle);
    d.ok(&["info"]);
}

#[test]
fn running_out_of_descriptors_does_not_end_the_daemon() {
    raise_limit();
    let d = Daemon::start_with_env(&[], &[("SHOAL_HEADER_READ_TIMEOUT_SECS", "2")]);
    let pid = pid(&d);
    // Far fewer descriptors than the clients about to come.
    let st = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=200:200"])
        .status()
        .expect("prlimit");
    assert!(st.success());
    let mut idle: Vec<UnixStream> = (0..600)
        .map(|_| UnixStream::connect(d.socket()).expect("connect"))
        .collect();
    wait_for(30, "accept failing for want of descriptors", || {
        d.log()
            .contains("accepting an API connection failed")
            .then_some(())
    });
    // Each connection is closed by the daemon once taken (head timeout).
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).expect("closed by shoald"), 0);
    }
    drop(idle);
    // Still there, and serving.
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    d.ok(&["version"]);
    assert!(!d.log().contains("listener failed"), "{}", d.log());
}
