//! Seeding a new volume from the image, as dockerd does: when a container
//! mounts an empty volume over a directory its image has content in, that
//! content (ownership, modes and times kept) is copied into the volume
//! first, and the volume's root takes the directory's owner and mode.
//! The `nocopy` volume option turns it off.
//!
//! The image's view at that path is the union of its layers. With one
//! layer that is the layer's own directory; with more, the layers are
//! mounted read-only as one overlay in a private temporary directory, so
//! the kernel applies whiteouts and opaque directories exactly as the
//! container will see them.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;

use containerd_client::types::Mount;
use nix::sys::stat::Mode;
use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;

/// The image's layer directories under a container's snapshot, topmost
/// first (its own writable layer left out).
pub fn image_layers(mounts: &[Mount]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in mounts {
        if m.r#type == "bind" {
            // A snapshot of an image without layers: nothing to copy.
            continue;
        }
        for opt in &m.options {
            if let Some(lower) = opt.strip_prefix("lowerdir=") {
                out.extend(lower.split(':').map(PathBuf::from));
            }
        }
    }
    out
}

/// Copies what the image has at `target` into the volume directory
/// `volume` when the volume is empty. Nothing happens when the volume has
/// content or the image has no directory there.
pub fn seed(layers: &[PathBuf], target: &str, volume: &Path) -> io::Result<()> {
    if std::fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    let rel = target.trim_start_matches('/');
    match layers {
        [] => Ok(()),
        [only] => copy_dir_if_present(&only.join(rel), volume),
        _ => with_union(layers, |root| copy_dir_if_present(&root.join(rel), volume)),
    }
}

/// Runs `f` on the read-only union of `layers`, unmounted afterwards.
fn with_union<T>(layers: &[PathBuf], f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    use nix::mount::MntFlags;
    use nix::mount::MsFlags;
    let dir = tempfile::Builder::new().prefix("shoal-seed").tempdir()?;
    let lower: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    let data = format!("lowerdir={}", lower.join(":"));
    nix::mount::mount(
        Some("overlay"),
        dir.path(),
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(data.as_str()),
    )
    .map_err(io::Error::from)?;
    let out = f(dir.path());
    let _ = nix::mount::umount2(dir.path(), MntFlags::MNT_DETACH);
    out
}

/// A directory's content into `dst`, when `src` is a directory (a symlink
/// or file in the image at the mount point is left alone, as dockerd
/// resolves it inside the container instead).
fn copy_dir_if_present(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(src) {
        Ok(m) if m.is_dir() => m,
        _ => return Ok(()),
    };
    copy_children(src, dst)?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}

fn copy_children(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        copy_entry(&entry.path(), &dst.join(entry.file_name()))?;
    }
    Ok(())
}

fn copy_entry(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        std::fs::create_dir(dst)?;
        copy_children(src, dst)?;
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        std::fs::copy(src, dst)?;
    } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
        let kind = if ft.is_fifo() {
            SFlag::S_IFIFO
        } else if ft.is_char_device() {
            SFlag::S_IFCHR
        } else {
            SFlag::S_IFBLK
        };
        let perm = Mode::from_bits_truncate(meta.mode() & 0o7777);
        nix::sys::stat::mknod(dst, kind, perm, meta.rdev()).map_err(io::Error::from)?;
    } else {
        // Sockets belong to a process that is not there: dockerd's copy
        // skips them too.
        return Ok(());
    }
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    if !ft.is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let at = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mt = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(
        None,
        dst,
        &at,
        &mt,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(options: &[&str]) -> Mount {
        Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn layers_leave_out_the_containers_own() {
        let m = overlay(&["workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1", "index=off"]);
        assert_eq!(
            image_layers(&[m]),
            vec![PathBuf::from("/l2"), PathBuf::from("/l1")]
        );
        let bind = Mount {
            r#type: "bind".into(),
            source: "/u".into(),
            ..Default::default()
        };
        assert!(image_layers(&[bind]).is_empty());
    }

    #[test]
    fn one_layer_seeds_an_empty_volume_with_modes_and_links() {
        let layer = tempfile::tempdir().unwrap();
        let web = layer.path().join("srv/www");
        std::fs::create_dir_all(web.join("sub")).unwrap();
        std::fs::write(web.join("index.html"), b"hello").unwrap();
        std::fs::set_permissions(
            web.join("index.html"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("index.html", web.join("link")).unwrap();
        std::fs::set_permissions(&web, std::fs::Permissions::from_mode(0o711)).unwrap();

        let vol = tempfile::tempdir().unwrap();
        seed(&[layer.path().to_path_buf()], "/srv/www", vol.path()).unwrap();
        assert_eq!(
            std::fs::read(vol.path().join("index.html")).unwrap(),
            b"hello"
        );
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&vol.path().join("index.html")), 0o640);
        assert_eq!(mode(vol.path()), 0o711);
        assert!(vol.path().join("sub").is_dir());
        assert_eq!(
            std::fs::read_link(vol.path().join("link")).unwrap(),
            PathBuf::from("index.html")
        );
    }

    #[test]
    fn several_layers_seed_their_union_with_whiteouts_applied() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting the layers' overlay needs root");
            return;
        }
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower.path().join("data")).unwrap();
        std::fs::write(lower.path().join("data/kept"), b"lower").unwrap();
        std::fs::write(lower.path().join("data/deleted"), b"lower").unwrap();
        std::fs::write(lower.path().join("data/changed"), b"lower").unwrap();
        std::fs::create_dir_all(upper.path().join("data")).unwrap();
        std::fs::write(upper.path().join("data/changed"), b"upper").unwrap();
        // An overlay whiteout: a 0/0 character device hides the lower file.
        nix::sys::stat::mknod(
            &upper.path().join("data/deleted"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o000),
            0,
        )
        .unwrap();
        let vol = tempfile::tempdir().unwrap();
        let layers = [upper.path().to_path_buf(), lower.path().to_path_buf()];
        seed(&layers, "/data", vol.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(vol.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["changed", "kept"]);
        assert_eq!(std::fs::read(vol.path().join("changed")).unwrap(), b"upper");
    }

    #[test]
    fn a_volume_with_content_or_a_missing_path_is_left_alone() {
        let layer = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(layer.path().join("data")).unwrap();
        std::fs::write(layer.path().join("data/a"), b"image").unwrap();
        let vol = tempfile::tempdir().unwrap();
        std::fs::write(vol.path().join("mine"), b"kept").unwrap();
        seed(&[layer.path().to_path_buf()], "/data", vol.path()).unwrap();
        assert!(!vol.path().join("a").exists());

        let empty = tempfile::tempdir().unwrap();
        seed(&[layer.path().to_path_buf()], "/nowhere", empty.path()).unwrap();
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    }
}
