//! Properties of hijacked connections (`exec` start, `attach`) on the real
//! listener: any `Upgrade` and `Connection` header a client sends, and any
//! bytes it sends once the connection is taken over, get an answer (a 101
//! with the stream, a 200 with the body, or the parser's 400), never a
//! panic; the upgraded stream carries exactly what was sent; and the
//! listener serves the next client after each, one that closes its side
//! right after its request (as socat does) too.

use std::io::Read;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Router;
use engine_api::server::hijack::Hijack;
use engine_api::server::hijack::RAW_STREAM;
use engine_api::server::listener;
use engine_api::server::listener::Host;
use engine_api::server::listener::ListenOptions;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Copies what the client sends back to it until it stops sending (a 200
/// without an upgrade writes a fixed line instead).
async fn echo(mut req: Request) -> Response {
    let hijack = Hijack::new(&mut req);
    hijack.respond(RAW_STREAM, |input, mut output| async move {
        match input {
            Some(mut input) => {
                let _ = tokio::io::copy(&mut input, &mut output).await;
            }
            None => {
                let _ = output.write_all(b"no upgrade\n").await;
            }
        }
        let _ = output.shutdown().await;
    })
}

/// The socket of one listener shared by every case, on its own runtime.
fn socket() -> &'static Path {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        // Under the build's own scratch directory: nothing outside the tree.
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hijack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let path = dir.join("api.sock");
        let host = Host::Unix(path.display().to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let app = Router::new()
                .route("/echo", post(echo))
                .route("/_ping", get(|| async { "OK" }));
            let opts = ListenOptions {
                group: "root".to_string(),
                tls: None,
                verify: false,
                tls_explicitly_off: false,
            };
            let _ = rt.block_on(listener::serve(host, opts, app, CancellationToken::new()));
        });
        for _ in 0..200 {
            if UnixStream::connect(&path).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        path
    })
}

/// Sends `head` and then `after`, reads the answer's head, then closes its
/// side (which ends an upgraded stream) and reads the rest (bounded by a
/// 10 s read timeout). It closes only after the head: hyper drops a
/// connection whose client went quiet before it answered.
fn exchange(head: &[u8], after: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(head);
    let _ = s.write_all(after);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.read_to_end(&mut out);
    out
}

/// `/_ping` as socat sends it: the request, then its side closed at once.
fn ping_answers() -> bool {
    let mut s = UnixStream::connect(socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let ok = out.starts_with(b"HTTP/1.1 200") && out.ends_with(b"OK");
    if !ok {
        eprintln!("ping: {:?}", String::from_utf8_lossy(&out));
    }
    ok
}

/// A header value: mostly printable, sometimes any bytes but the line's
/// end (which would frame another header: the parser's business, not the
/// hijack's).
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "(tcp|TCP|websocket|h2c|[ -~]{0,16})".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>().prop_filter("not CR or LF", |b| *b != b'\r' && *b != b'\n'), 0..16),
    ]
}

/// Whether the HTTP parser refuses `v` in a header value (a control byte
/// other than tab).
fn refused(v: &Option<Vec<u8>>) -> bool {
    v.as_ref()
        .is_some_and(|v| v.iter().any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_upgrade_request_is_answered_and_the_stream_is_exact(
        upgrade in prop::option::of(value()),
        connection in prop::option::of(value()),
        after in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n".to_vec();
        for (name, v) in [("Upgrade", &upgrade), ("Connection", &connection)] {
            if let Some(v) = v {
                head.extend_from_slice(name.as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(v);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"\r\n");
        let out = exchange(&head, &after);
        let text = String::from_utf8_lossy(&out);
        let status = text.get(9..12).unwrap_or("");
        match status {
            "101" => {
                prop_assert!(upgrade.is_some(), "a 101 without an upgrade asked: {}", text);
                let body = out
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|i| &out[i + 4..])
                    .unwrap_or(&[]);
                prop_assert_eq!(body, &after[..], "the upgraded stream");
            }
            "200" => prop_assert!(text.contains("no upgrade"), "{}", text),
            // Bytes the HTTP parser refuses in a header value.
            "400" => prop_assert!(
                refused(&upgrade) || refused(&connection),
                "a 400 for printable headers: {}", text
            ),
            _ => prop_assert!(false, "unexpected answer: {:?}", text),
        }
        prop_assert!(ping_answers(), "the listener stopped serving");
    }
}
