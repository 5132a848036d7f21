//! End-to-end: docker secret and config create/ls/inspect/rm.

mod common;

use common::marker;
use common::temp_file;
use common::Daemon;

#[test]
fn secret_lifecycle_never_shows_data() {
    let d = Daemon::with_swarm();
    let value = marker("pw-");
    let file = temp_file(&d, "pw.txt", value.as_bytes());
    let id = d.ok(&["secret", "create", "--label", "env=prod", "db_pass", &file]);
    assert_eq!(id.trim().len(), 25, "{id}");
    let id2 = d
        .docker_stdin(&["secret", "create", "api_key", "-"], Some(b"k3y"))
        .stdout;
    assert_eq!(id2.trim().len(), 25);
    let ls = d.ok(&["secret", "ls"]);
    assert!(ls.contains("db_pass") && ls.contains("api_key"), "{ls}");
    let f = d.ok(&["secret", "ls", "-q", "--filter", "label=env=prod"]);
    assert_eq!(f.trim(), id.trim());
    let f = d.ok(&[
        "secret",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "name=db",
    ]);
    assert_eq!(f.trim(), "db_pass");
    let inspect = d.ok(&["secret", "inspect", "db_pass"]);
    assert!(inspect.contains("\"env\": \"prod\""), "{inspect}");
    assert!(
        !inspect.contains("\"Data\""),
        "secret data leaked: {inspect}"
    );
    // No API anywhere returns the value, not even base64-encoded.
    let b64 = base64_of(value.as_bytes());
    for path in ["/v1.41/secrets", &format!("/v1.41/secrets/{}", id.trim())] {
        let (_, body) = d.curl("GET", path, None);
        assert!(!body.contains(&b64) && !body.contains(&value), "{body}");
    }
    let pretty = d.ok(&["secret", "inspect", "--pretty", "db_pass"]);
    assert!(
        pretty.contains("Name:") && pretty.contains("db_pass"),
        "{pretty}"
    );
    let err = d.fail(&["secret", "create", "db_pass", &file]);
    assert!(
        err.contains("rpc error: code = AlreadyExists desc = secret db_pass already exists"),
        "{err}"
    );
    d.ok(&["secret", "rm", "db_pass", "api_key"]);
    assert_eq!(d.ok(&["secret", "ls", "-q"]).trim(), "");
    let err = d.fail(&["secret", "inspect", "db_pass"]);
    assert!(
        err.contains("secret db_pass not found") || err.contains("No such secret: db_pass"),
        "{err}"
    );
}

fn base64_of(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn secret_and_config_limits_and_names() {
    let d = Daemon::with_swarm();
    let big = temp_file(&d, "big", &vec![b'x'; 600_000]);
    let err = d.fail(&["secret", "create", "big", &big]);
    assert!(
        err.contains("rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes"),
        "{err}"
    );
    d.ok(&["config", "create", "mid", &big]);
    let huge = temp_file(&d, "huge", &vec![b'x'; 1_100_000]);
    let err = d.fail(&["config", "create", "huge", &huge]);
    assert!(
        err.contains("rpc error: code = InvalidArgument desc = config data must be larger than 0 and less than 1024000 bytes"),
        "{err}"
    );
    let small = temp_file(&d, "small", b"x");
    let err = d.fail(&["config", "create", "bad name", &small]);
    assert!(err.contains("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"), "{err}");
    let r = d.docker_stdin(&["secret", "create", "empty", "-"], Some(b""));
    assert_ne!(r.code, 0);
}

#[test]
fn config_lifecycle_shows_data() {
    let d = Daemon::with_swarm();
    let file = temp_file(&d, "app.conf", b"listen 80\n");
    d.ok(&["config", "create", "--label", "tier=web", "app_cfg", &file]);
    let data = d.ok(&[
        "config",
        "inspect",
        "app_cfg",
        "--format",
        "{{json .Spec.Data}}",
    ]);
    assert_eq!(data.trim(), "\"bGlzdGVuIDgwCg==\"");
    let pretty = d.ok(&["config", "inspect", "--pretty", "app_cfg"]);
    assert!(pretty.contains("listen 80"), "{pretty}");
    assert_eq!(
        d.ok(&[
            "config",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            "name=app"
        ])
        .trim(),
        "app_cfg"
    );
    assert_eq!(
        d.ok(&["config", "ls", "-q", "--filter", "label=tier=db"])
            .trim(),
        ""
    );
    let err = d.fail(&["config", "ls", "--filter", "nope=1"]);
    assert!(err.contains("Invalid filter 'nope'"), "{err}");
    d.ok(&["config", "rm", "app_cfg"]);
    let err = d.fail(&["config", "rm", "app_cfg"]);
    assert!(
        err.contains("config app_cfg not found") || err.contains("No such config"),
        "{err}"
    );
}

#[test]
fn secrets_survive_kill9_with_same_id_and_version() {
    let mut d = Daemon::with_swarm();
    let file = temp_file(&d, "v", b"value");
    d.ok(&["secret", "create", "keep", &file]);
    let before = d.ok(&[
        "secret",
        "inspect",
        "keep",
        "--format",
        "{{.ID}} {{.Version.Index}} {{.CreatedAt}} {{.UpdatedAt}}",
    ]);
    d.restart_after_kill9();
    let after = d.ok(&[
        "secret",
        "inspect",
        "keep",
        "--format",
        "{{.ID}} {{.Version.Index}} {{.CreatedAt}} {{.UpdatedAt}}",
    ]);
    assert_eq!(before, after);
}
