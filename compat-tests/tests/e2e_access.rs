//! End-to-end: who may reach the API. The Unix socket as dockerd makes it
//! (root, group `docker` or `-G`, mode 0660), the PID file, and TCP
//! listeners with dockerd's `--tls`/`--tlsverify` flags, driven with the
//! stock CLI's own TLS flags.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::shoald_bin;
use common::Daemon;

/// Runs the stock CLI inside the daemon's namespaces with `args` (global
/// flags included), bounded; returns (exit code, stdout, stderr).
fn docker_in(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = d
        .node()
        .expect("every daemon runs in a node")
        .command("timeout")
        .arg("20")
        .arg("docker")
        .args(args)
        .env_remove("DOCKER_HOST")
        .env("DOCKER_CONFIG", d.dir.path().join("cli-config"))
        .output()
        .expect("docker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs shoald in `d`'s namespaces expecting it to refuse to start;
/// returns its stderr.
fn refused(d: &Daemon, args: &[&str]) -> String {
    let out = d
        .node()
        .expect("every daemon runs in a node")
        .command("timeout")
        .arg("20")
        .arg(shoald_bin())
        .args(args)
        .output()
        .expect("shoald");
    assert!(!out.status.success(), "shoald {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` making a P-256 key `NAME-key.pem` for subject `NAME`,
/// with `rest` saying what to write (a self-signed CA or a request).
fn new_key(dir: &Path, name: &str, rest: &[&str]) {
    let key = format!("{name}-key.pem");
    let subject = format!("/CN={name}");
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        &subject,
    ];
    args.extend_from_slice(rest);
    openssl(dir, &args);
}

/// A CA `NAME.pem` (key `NAME-key.pem`) in `dir`.
fn ca(dir: &Path, name: &str) {
    let cert = format!("{name}.pem");
    new_key(dir, name, &["-x509", "-out", &cert, "-days", "1"]);
}

/// A certificate `NAME.pem` (key `NAME-key.pem`) signed by the CA `by`,
/// for `usage` (serverAuth or clientAuth).
fn leaf(dir: &Path, name: &str, by: &str, usage: &str) {
    new_key(dir, name, &["-out", &format!("{name}.csr")]);
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{by}.pem"),
            "-CAkey",
            &format!("{by}-key.pem"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            ext.to_str().unwrap(),
        ],
    );
}

#[test]
fn the_socket_is_root_and_its_group_0660_and_the_pid_file_guards_the_start() {
    // `adm` is in every Debian base system.
    let d = Daemon::start_with(&["-G", "adm"]);
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, 4), "root:adm");

    // The PID file of a daemon with its own data root is in it.
    let pidfile = d.data_root().join("shoald.pid");
    let pid = std::fs::read_to_string(&pidfile).expect("pid file");
    assert!(
        Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the PID file names a live process: {pid}"
    );
    // A second daemon on the same PID file is refused, as dockerd refuses.
    let other = d.dir.path().join("other.sock");
    let err = refused(
        &d,
        &[
            "--host",
            &format!("unix://{}", other.display()),
            "--data-root",
            d.dir.path().join("other").to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains(&format!(
            "pid file found, ensure shoald is not running or delete {}",
            pidfile.display()
        )),
        "{err}"
    );

    // A group that does not exist fails the start when asked for...
    let err = refused(
        &d,
        &[
            "--host",
            &format!("unix://{}", other.display()),
            "--data-root",
            d.dir.path().join("other").to_str().unwrap(),
            "-G",
            "no-such-group-here",
        ],
    );
    assert!(err.contains("group no-such-group-here not found"), "{err}");

    // ...while the default one (`docker`) is used when it exists, and
    // only warned about when it does not, as dockerd does.
    let mut plain = Daemon::start();
    let gid = std::fs::metadata(plain.socket()).unwrap().gid();
    match nix::unistd::Group::from_name("docker").unwrap() {
        Some(g) => assert_eq!(gid, g.gid.as_raw()),
        None => assert!(
            plain.log().contains("could not change group")
                && plain.log().contains("group docker not found"),
            "{}",
            plain.log()
        ),
    }
    let own = plain.data_root().join("shoald.pid");
    assert!(own.exists());
    plain.stop();
    assert!(!own.exists(), "the PID file goes with the daemon");
}

#[test]
fn tcp_with_tlsverify_takes_only_clients_of_its_ca() {
    let pki = tempfile::tempdir().unwrap();
    let p = pki.path();
    ca(p, "ca");
    ca(p, "foreign");
    leaf(p, "server", "ca", "serverAuth");
    leaf(p, "client", "ca", "clientAuth");
    leaf(p, "stranger", "foreign", "clientAuth");
    let f = |n: &str| p.join(n).display().to_string();
    let d = Daemon::start_with(&[
        "--host",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        &f("ca.pem"),
        "--tlscert",
        &f("server.pem"),
        "--tlskey",
        &f("server-key.pem"),
    ]);
    let host = "tcp://127.0.0.1:2376";
    let with = |cert: &str| {
        docker_in(
            &d,
            &[
                "--tlsverify",
                "--tlscacert",
                &f("ca.pem"),
                "--tlscert",
                &f(&format!("{cert}.pem")),
                "--tlskey",
                &f(&format!("{cert}-key.pem")),
                "-H",
                host,
                "version",
                "--format",
                "{{.Server.Version}}",
            ],
        )
    };
    let (code, out, err) = with("client");
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty());
    assert!(!d.log().contains("without --tlsverify"), "{}", d.log());

    // A certificate of another CA, and none at all, are refused.
    let (code, _, err) = with("stranger");
    assert_ne!(code, 0, "a foreign client certificate got in");
    assert!(!err.is_empty());
    let (code, _, err) = docker_in(
        &d,
        &["--tls", "--tlscacert", &f("ca.pem"), "-H", host, "version"],
    );
    assert_ne!(code, 0, "a client without a certificate got in");
    assert!(!err.is_empty());
    // Plain HTTP to the TLS port gets nothing either.
    let (code, _, _) = docker_in(&d, &["-H", host, "version"]);
    assert_ne!(code, 0);

    // The swarm API over TLS is the same API.
    let (code, out, err) = docker_in(
        &d,
        &[
            "--tlsverify",
            "--tlscacert",
            &f("ca.pem"),
            "--tlscert",
            &f("client.pem"),
            "--tlskey",
            &f("client-key.pem"),
            "-H",
            host,
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Swarm initialized"), "{out}");
}

#[test]
fn plain_tcp_warns_as_dockerd_does_and_bad_tls_files_stop_the_start() {
    let d = Daemon::start_with(&["--host", "tcp://127.0.0.1"]);
    // No port: dockerd's 2375, bound after dockerd's one-second pause.
    let os = common::wait_for(10, "the TCP listener", || {
        let (code, out, _) = docker_in(
            &d,
            &[
                "-H",
                "tcp://127.0.0.1:2375",
                "version",
                "--format",
                "{{.Server.Os}}",
            ],
        );
        (code == 0).then_some(out)
    });
    assert_eq!(os.trim(), "linux");
    let log = d.log();
    for w in [
        "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.",
        "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there!",
    ] {
        assert!(log.contains(w), "missing {w:?} in {log}");
    }
    // Loopback is spared the long pause and its notice.
    assert!(
        !log.contains("Startup is intentionally being slowed down"),
        "{log}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let err = refused(
        &d,
        &[
            "--host",
            &format!("unix://{}", dir.path().join("s.sock").display()),
            "--data-root",
            dir.path().join("data").to_str().unwrap(),
            "--tlsverify",
            "--tlscacert",
            missing.to_str().unwrap(),
            "--tlscert",
            dir.path().join("c.pem").to_str().unwrap(),
            "--tlskey",
            dir.path().join("k.pem").to_str().unwrap(),
        ],
    );
    assert!(err.contains("Could not load X509 key pair"), "{err}");
}

/// shoald's resident memory in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn slow_and_idle_clients_neither_stop_others_nor_stay_forever() {
    use std::io::Read;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    // The test holds a descriptor per connection too.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("limit");
    let idle_count = 2000.min(hard.saturating_sub(200) as usize);
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
        .expect("raise the limit");
    let d = Daemon::start_with_env(&[], &[("SHOAL_HEADER_READ_TIMEOUT_SECS", "3")]);
    let pid: u32 = std::fs::read_to_string(d.data_root().join("shoald.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let before = rss_kb(pid);

    // Thousands of connections that say nothing, and a few that send their
    // request head a byte at a time.
    let mut idle: Vec<UnixStream> = (0..idle_count)
        .map(|_| UnixStream::connect(d.socket()).expect("connect"))
        .collect();
    let mut slow: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(d.socket()).expect("connect"))
        .collect();
    let head = b"GET /_ping HTTP/1.1\r\nHost: x\r\n";
    for byte in head.iter().take(8) {
        for s in &mut slow {
            s.write_all(&[*byte]).expect("a byte");
        }
        // Others are served meanwhile.
        d.ok(&["version", "--format", "{{.Server.Os}}"]);
    }
    let during = rss_kb(pid);
    assert!(
        during < before + 100 * 1024,
        "{idle_count} idle connections took {} kB (from {before} kB)",
        during.saturating_sub(before)
    );

    // Past the head timeout every one of them is closed by shoald.
    for s in slow.iter_mut().chain(idle.iter_mut().take(50)) {
        s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("closed by shoald, not timed out");
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    }
    d.ok(&["version"]);
    drop(idle);
}
