//! The local test image (`shoal-test/busybox:latest`) every test loads.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

/// Builds the test image with `compat-tests/scripts/make-test-image.sh`
/// (docker-archive, or OCI layout when `oci`) into `dir`; returns the tar.
pub fn make_test_image(dir: &Path, oci: bool) -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-test-image.sh");
    let out = dir.join(if oci { "image-oci.tar" } else { "image.tar" });
    let mut cmd = Command::new("bash");
    cmd.arg(script);
    if oci {
        cmd.arg("--oci");
    }
    let o = cmd.arg(&out).output().context("run make-test-image.sh")?;
    anyhow::ensure!(
        o.status.success(),
        "make-test-image.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(out)
}

/// The name the test image loads as.
pub const TEST_IMAGE: &str = "shoal-test/busybox:latest";
