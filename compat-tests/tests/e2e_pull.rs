//! End-to-end: `docker pull`, `docker login` and `GET /distribution` against
//! a private containerd, shoald and a private Debian `docker-registry` on a
//! free loopback port (its own config and storage in a temp dir, stopped by
//! PID). The test image is pushed to the registry with oci-client.
//!
//! Skips (with the reason) when not root or when containerd or
//! docker-registry is missing, unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use common::make_test_image;
use common::Containerd;
use common::Daemon;
use common::NodeNs;
use oci_client::secrets::RegistryAuth;

const REPO: &str = "shoal-test/busybox";

/// A private `docker-registry` on the node's 127.0.0.1 (shoald pulls from
/// inside the node's network namespace), killed by PID on drop.
struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    node: Arc<NodeNs>,
}

impl Registry {
    /// Starts a registry, with htpasswd authentication when `user` is
    /// given; waits (at most 20 s) until it answers. `None` (after printing
    /// why) when this machine has no docker-registry and none is required.
    fn start(node: Arc<NodeNs>, user: Option<(&str, &str)>) -> Option<Registry> {
        if let Some(why) = missing_tools(user.is_some()) {
            if std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_some() {
                panic!("docker-registry is required here: {why}");
            }
            eprintln!("skipping: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("shoal-registry")
            .tempdir()
            .unwrap();
        let port = node.in_net(free_port);
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((u, p)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: shoal-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = node
            .command("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let r = Registry {
            dir,
            port,
            child: Some(child),
            node,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while r
            .node
            .in_net(|| std::net::TcpStream::connect(("127.0.0.1", port)))
            .is_err()
        {
            if Instant::now() > deadline {
                panic!("docker-registry did not listen within 20s:\n{}", r.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    /// `127.0.0.1:PORT`.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn missing_tools(htpasswd: bool) -> Option<String> {
    let mut tools = vec!["docker-registry"];
    if htpasswd {
        tools.push("htpasswd");
    }
    for t in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "{t} is not installed (apt-get install docker-registry apache2-utils)"
            ));
        }
    }
    None
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test image's blobs, read from the OCI layout make-test-image writes.
struct TestImage {
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
}

fn test_image(dir: &Path) -> TestImage {
    let tar = make_test_image(dir, true);
    let out = dir.join("oci");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let blob = |d: &str| -> Vec<u8> {
        std::fs::read(
            out.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = blob(&manifest_digest);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config_digest = m["config"]["digest"].as_str().unwrap().to_string();
    let layer_digest = m["layers"][0]["digest"].as_str().unwrap().to_string();
    TestImage {
        config: blob(&config_digest),
        config_digest,
        layer: blob(&layer_digest),
        layer_digest,
        manifest,
        manifest_digest,
    }
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", hex.split_whitespace().next().unwrap())
}

/// Pushes `img` to `host/REPO:tag` and, when `index_tag` is given, an
/// index under that tag listing it for linux/amd64 next to an arm64
/// manifest (a copy with another annotation). Returns the index digest.
fn push(
    reg: &Registry,
    img: &TestImage,
    tag: &str,
    index_tag: Option<&str>,
    auth: RegistryAuth,
) -> Option<String> {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let host = reg.host();
    let host = host.as_str();
    // reqwest is built without a crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reg.node.in_net(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
        let client = oci_client::Client::new(oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::Http,
            ..Default::default()
        });
        let at = |t: &str| {
            oci_client::Reference::with_tag(host.to_string(), REPO.to_string(), t.to_string())
        };
        client
            .auth(&at(tag), &auth, oci_client::RegistryOperation::Push)
            .await
            .expect("registry auth");
        let ct = |t: &'static str| http::HeaderValue::from_static(t);
        client
            .push_blob(&at(tag), img.config.clone(), &img.config_digest)
            .await
            .expect("push config");
        client
            .push_blob(&at(tag), img.layer.clone(), &img.layer_digest)
            .await
            .expect("push layer");
        client
            .push_manifest_raw(&at(tag), img.manifest.clone(), ct(OCI_MANIFEST))
            .await
            .expect("push manifest");
        let index_tag = index_tag?;
        let mut other: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        other["annotations"] = serde_json::json!({ "shoal.test": "arm64" });
        let other = serde_json::to_vec(&other).unwrap();
        let other_digest = sha256(&other);
        client
            .push_manifest_raw(&at(&other_digest), other.clone(), ct(OCI_MANIFEST))
            .await
            .expect("push arm64 manifest");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                { "mediaType": OCI_MANIFEST, "digest": other_digest, "size": other.len(),
                  "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" } },
                { "mediaType": OCI_MANIFEST, "digest": img.manifest_digest, "size": img.manifest.len(),
                  "platform": { "architecture": "amd64", "os": "linux" } },
            ],
        });
        let index = serde_json::to_vec(&index).unwrap();
        client
            .push_manifest_raw(&at(index_tag), index.clone(), ct(OCI_INDEX))
            .await
            .expect("push index");
        Some(sha256(&index))
    })
    })
}

/// containerd, shoald and a registry, or `None` when the test is skipped.
fn setup(user: Option<(&str, &str)>) -> Option<(Containerd, Daemon, Registry)> {
    let ctrd = Containerd::start()?;
    let reg = Registry::start(ctrd.node.clone(), user)?;
    let d = Daemon::with_containerd(&ctrd);
    Some((ctrd, d, reg))
}

fn short(digest: &str) -> &str {
    &digest["sha256:".len().."sha256:".len() + 12]
}

#[test]
fn pull_from_a_loopback_registry() {
    let Some((_ctrd, d, reg)) = setup(None) else {
        return;
    };
    let img = test_image(d.dir.path());
    let host = reg.host();
    let index_digest = push(&reg, &img, "latest", Some("multi"), RegistryAuth::Anonymous).unwrap();
    let name = format!("{host}/{REPO}:latest");

    let out = d.ok(&["pull", &name]);
    let layer = short(&img.layer_digest);
    assert_eq!(
        out,
        format!(
            "latest: Pulling from {REPO}\n\
             {layer}: Pulling fs layer\n\
             {layer}: Verifying Checksum\n\
             {layer}: Download complete\n\
             {layer}: Pull complete\n\
             Digest: {}\n\
             Status: Downloaded newer image for {name}\n\
             {name}\n",
            img.manifest_digest
        )
    );
    // Again: nothing to download, and dockerd's words for that.
    let again = d.ok(&["pull", &name]);
    assert_eq!(
        again,
        format!(
            "latest: Pulling from {REPO}\n\
             Digest: {}\n\
             Status: Image is up to date for {name}\n\
             {name}\n",
            img.manifest_digest
        )
    );

    let ls = d.ok(&[
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(
        ls.trim(),
        format!("{host}/{REPO}:latest {}", short(&img.config_digest))
    );
    let inspect = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}|{{json .RepoTags}}|{{.Os}}/{{.Architecture}}|{{json .Config.Cmd}}|{{len .RootFS.Layers}}",
        &name,
    ]);
    assert_eq!(
        inspect.trim(),
        format!("{}|[\"{name}\"]|linux/amd64|[\"sh\"]|1", img.config_digest)
    );

    // An index resolves to its linux/amd64 manifest; the digest printed is
    // the index's. Every blob is here already.
    let multi = format!("{host}/{REPO}:multi");
    let out = d.ok(&["pull", &multi]);
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {multi}\n")),
        "{out}"
    );
    assert!(!out.contains("Pulling fs layer"), "{out}");
    let id = d.ok(&["image", "inspect", "--format", "{{.Id}}", &multi]);
    assert_eq!(id.trim(), img.config_digest);

    // By digest.
    let pinned = format!("{host}/{REPO}@{}", img.manifest_digest);
    let out = d.ok(&["pull", &pinned]);
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {pinned}\n")),
        "{out}"
    );
    // A name pinned by digest is no tag.
    let tags = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoTags}}",
        &pinned,
    ]);
    assert_eq!(tags.trim(), format!("[\"{name}\",\"{multi}\"]"), "{tags}");

    // Missing tag and missing repository: dockerd's texts, exit code 1.
    let r = d.docker(&["pull", &format!("{host}/{REPO}:nope")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        format!(
            "Error response from daemon: manifest for {host}/{REPO}:nope not found: manifest unknown: manifest unknown"
        )
    );
    let r = d.docker(&["pull", &format!("{host}/shoal-test/nosuch")]);
    assert_eq!(r.code, 1, "{r:?}");
    // (This registry answers MANIFEST_UNKNOWN for a repository it lacks.)
    assert_eq!(
        r.stderr.trim(),
        format!(
            "Error response from daemon: manifest for {host}/shoal-test/nosuch:latest not found: manifest unknown: manifest unknown"
        )
    );
    // Nothing listening: the transport error, as dockerd words it.
    let gone = format!("127.0.0.1:{}", free_port());
    let r = d.docker(&["pull", &format!("{gone}/a/b:c")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        format!(
            "Error response from daemon: Get \"http://{gone}/v2/\": dial tcp {gone}: connect: connection refused"
        )
    );

    // The lookup `docker service create` makes to pin a digest.
    let (code, body) = d.curl("GET", &format!("/v1.41/distribution/{name}/json"), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Descriptor"]["digest"], img.manifest_digest.as_str());
    assert_eq!(
        v["Descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(v["Descriptor"]["size"], img.manifest.len());
    assert!(v["Platforms"].is_null(), "{body}");
    let (code, body) = d.curl("GET", &format!("/v1.41/distribution/{multi}/json"), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Descriptor"]["digest"], index_digest.as_str());
    assert_eq!(
        v["Platforms"],
        serde_json::json!([
            { "architecture": "arm64", "os": "linux", "variant": "v8" },
            { "architecture": "amd64", "os": "linux" }
        ])
    );
    let (code, body) = d.curl(
        "GET",
        &format!("/v1.41/distribution/{host}/{REPO}:nope/json"),
        None,
    );
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("manifest unknown: manifest unknown"),
        "{body}"
    );

    for n in [&name, &multi, &pinned] {
        d.ok(&["image", "rm", n]);
    }
    assert_eq!(d.ok(&["image", "ls", "-q"]).trim(), "");
}

#[test]
fn pull_from_a_registry_with_basic_auth() {
    let (user, pass) = ("shoal", "s3cret-pass");
    let Some((_ctrd, d, reg)) = setup(Some((user, pass))) else {
        return;
    };
    let img = test_image(d.dir.path());
    let host = reg.host();
    push(
        &reg,
        &img,
        "latest",
        None,
        RegistryAuth::Basic(user.into(), pass.into()),
    );
    let name = format!("{host}/{REPO}:latest");

    let r = d.docker(&["pull", &name]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        format!(
            "Error response from daemon: Head \"http://{host}/v2/{REPO}/manifests/latest\": no basic auth credentials"
        )
    );

    let r = d.docker_stdin(
        &["login", "-u", user, "--password-stdin", &host],
        Some(b"wrong\n"),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"
        )),
        "{r:?}"
    );
    let r = d.docker_stdin(
        &["login", "-u", user, "--password-stdin", &host],
        Some(format!("{pass}\n").as_bytes()),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Login Succeeded"), "{r:?}");

    // The CLI now sends X-Registry-Auth from its config file.
    let out = d.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{out}"
    );
    let id = d.ok(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(id.trim(), img.config_digest);
}

#[test]
fn service_create_pins_the_registry_digest() {
    let Some((_ctrd, d, reg)) = setup(None) else {
        return;
    };
    let img = test_image(d.dir.path());
    let host = reg.host();
    push(&reg, &img, "latest", None, RegistryAuth::Anonymous);
    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    let name = format!("{host}/{REPO}:latest");
    // The CLI asks GET /distribution and pins the tag to the digest.
    let r = d.docker(&["service", "create", "-d", "--name", "pinned", &name, "top"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("could not be accessed"), "{r:?}");
    let image = d.service_format("pinned", "{{.Spec.TaskTemplate.ContainerSpec.Image}}");
    assert_eq!(image.trim(), format!("{name}@{}", img.manifest_digest));
    d.ok(&["service", "rm", "pinned"]);
}

/// `docker service ps` rows as `state|error` of every task of `svc`.
fn task_states(d: &Daemon, svc: &str) -> Vec<String> {
    d.ok(&[
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.CurrentState}}|{{.Error}}",
        svc,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn tasks_pull_with_the_service_registry_auth() {
    let (user, pass) = ("shoal", "s3cret-pass");
    let Some((_ctrd, d, reg)) = setup(Some((user, pass))) else {
        return;
    };
    let img = test_image(d.dir.path());
    let host = reg.host();
    push(
        &reg,
        &img,
        "latest",
        None,
        RegistryAuth::Basic(user.into(), pass.into()),
    );
    let name = format!("{host}/{REPO}:latest");
    d.docker_stdin(
        &["login", "-u", user, "--password-stdin", &host],
        Some(format!("{pass}\n").as_bytes()),
    );
    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);

    // Without --with-registry-auth the node pulls anonymously and is refused.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "anon",
        "--restart-condition",
        "none",
        &name,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let rejected = common::wait_for(60, "anonymous pull rejected", || {
        task_states(&d, "anon")
            .into_iter()
            .find(|r| r.starts_with("Rejected"))
    });
    assert!(rejected.contains("No such image: "), "{rejected}");
    assert!(
        d.log().contains("no basic auth credentials"),
        "the pull's error is logged"
    );
    d.ok(&["service", "rm", "anon"]);

    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "authed",
        "--with-registry-auth",
        "--stop-grace-period",
        "1s",
        &name,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    common::wait_for(60, "task running from the pulled image", || {
        task_states(&d, "authed")
            .iter()
            .any(|r| r.starts_with("Running"))
            .then_some(())
    });
    // The credentials are kept for the nodes, never shown.
    let inspect = d.ok(&["service", "inspect", "authed"]);
    assert!(!inspect.contains(pass), "{inspect}");
    assert!(
        !inspect.to_lowercase().contains("registryauth"),
        "{inspect}"
    );
}
