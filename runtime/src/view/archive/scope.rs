//! Resolving a container path on the host, following symlinks as the
//! container would see them: an absolute link starts again at the
//! container's root, and `..` never climbs above it (dockerd's
//! `FollowSymlinkInScope`).

use std::path::Path;
use std::path::PathBuf;

/// Most symlinks one resolution follows before giving up (as Linux).
const MAX_LINKS: usize = 255;

/// The host path of `path` inside `root`. Every symlink on the way is
/// followed; the last element too when `follow_last`. Elements that do not
/// exist are kept as they are (the caller's `lstat` reports them missing).
pub fn resolve(root: &Path, path: &str, follow_last: bool) -> std::io::Result<PathBuf> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = components(path).into_iter().rev().collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let host = join(root, &done).join(&c);
        let is_last = todo.is_empty();
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(_) => {
                done.push(c);
                continue;
            }
        };
        if !meta.file_type().is_symlink() || (is_last && !follow_last) {
            done.push(c);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(std::io::Error::other("too many levels of symbolic links"));
        }
        let target = std::fs::read_link(&host)?;
        let target = target.to_string_lossy();
        if target.starts_with('/') {
            done.clear();
        }
        todo.extend(components(&target).into_iter().rev());
    }
    Ok(join(root, &done))
}

/// `root` with `parts` below it, as a container path `/a/b` too.
fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in parts {
        p.push(c);
    }
    p
}

/// The container path (`/` + parts) of a host path under `root`.
pub fn container_path(root: &Path, host: &Path) -> String {
    let rel = host.strip_prefix(root).unwrap_or(host);
    format!("/{}", rel.to_string_lossy())
}

fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn links_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/sub/f"), b"x").unwrap();
        symlink("/data", root.join("abs")).unwrap();
        symlink("../../../data/sub", root.join("data/up")).unwrap();
        symlink("/etc/passwd", root.join("escape")).unwrap();
        symlink("loop", root.join("loop")).unwrap();

        assert_eq!(
            resolve(root, "/abs/sub/f", true).unwrap(),
            root.join("data/sub/f")
        );
        assert_eq!(
            resolve(root, "/data/up/f", true).unwrap(),
            root.join("data/sub/f")
        );
        assert_eq!(
            resolve(root, "/escape", true).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve(root, "/escape", false).unwrap(),
            root.join("escape")
        );
        assert_eq!(resolve(root, "/../../x", true).unwrap(), root.join("x"));
        assert!(resolve(root, "/loop", true).is_err());
        assert_eq!(container_path(root, &root.join("data/sub")), "/data/sub");
    }
}
