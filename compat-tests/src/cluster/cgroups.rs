//! The cgroups a node's engine makes under its own parent, found and
//! removed (only those: never a cgroup the lab did not create).

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use super::procs;

/// The cgroup mount root.
const ROOT: &str = "/sys/fs/cgroup";

/// Where `parent` appears: `/sys/fs/cgroup/<parent>` on a unified (v2)
/// host, `/sys/fs/cgroup/<hierarchy>/<parent>` for each v1 hierarchy.
pub fn dirs_of(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        out.push(root.join(rel));
    } else if let Ok(dir) = std::fs::read_dir(root) {
        for e in dir.flatten() {
            out.push(e.path().join(rel));
        }
    }
    out.retain(|p| p.is_dir());
    out
}

/// The top-level cgroups (as parents, `/<name>`) whose names start with
/// one of `prefixes`, in any hierarchy.
pub fn top_level_named(prefixes: &[&str]) -> Vec<String> {
    let root = Path::new(ROOT);
    let mut hierarchies = vec![root.to_path_buf()];
    if !root.join("cgroup.controllers").exists() {
        if let Ok(rd) = std::fs::read_dir(root) {
            hierarchies = rd.flatten().map(|e| e.path()).collect();
        }
    }
    let mut out: Vec<String> = Vec::new();
    for h in hierarchies {
        let Ok(rd) = std::fs::read_dir(h) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && prefixes.iter().any(|p| name.starts_with(p)) {
                let parent = format!("/{name}");
                if !out.contains(&parent) {
                    out.push(parent);
                }
            }
        }
    }
    out
}

/// The container cgroups directly under `parent` (their names), in the
/// first hierarchy that has it.
pub fn children(parent: &str) -> Vec<String> {
    let Some(dir) = dirs_of(parent).into_iter().next() else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect()
}

/// The PIDs in `parent`'s cgroups (`cgroup.procs` of every cgroup below
/// it), in the first hierarchy that has it.
pub fn pids(parent: &str) -> Vec<u32> {
    let mut out = Vec::new();
    if let Some(dir) = dirs_of(parent).into_iter().next() {
        collect_pids(&dir, &mut out, 0);
    }
    out
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>, depth: u32) {
    if depth > 8 {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                collect_pids(&e.path(), out, depth + 1);
            }
        }
    }
}

/// Removes `parent` and the cgroups below it, deepest first, in every
/// hierarchy, retrying while their last processes exit (bounded by
/// `limit`). Returns what could not be removed.
pub fn remove_tree(parent: &str, limit: Duration) -> Vec<PathBuf> {
    let left = procs::try_wait_for(limit, || {
        let mut left = Vec::new();
        for dir in dirs_of(parent) {
            remove_dir_tree(&dir, &mut left, 0);
        }
        left.is_empty().then_some(())
    });
    if left.is_some() {
        return Vec::new();
    }
    dirs_of(parent)
}

fn remove_dir_tree(dir: &Path, left: &mut Vec<PathBuf>, depth: u32) {
    if depth > 8 {
        left.push(dir.to_path_buf());
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_dir_tree(&e.path(), left, depth + 1);
            }
        }
    }
    // A cgroup directory goes with rmdir alone: its control files are not
    // real files.
    if std::fs::remove_dir(dir).is_err() && dir.exists() {
        left.push(dir.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_root_parent_names_no_directory() {
        assert!(dirs_of("").is_empty());
        assert!(dirs_of("/").is_empty());
        assert!(dirs_of("/shoal-no-such-lab-node1").is_empty());
    }
}
