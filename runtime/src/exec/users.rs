//! User and group names of an image, resolved from its `/etc/passwd` and
//! `/etc/group` the way dockerd resolves `--user` and `--group`.

use std::path::Path;

/// An image's user and group databases.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    passwd: String,
    group: String,
}

fn field(line: &str, i: usize) -> Option<&str> {
    line.split(':').nth(i)
}

impl UserDb {
    /// A database from the files' contents.
    pub fn new(passwd: impl Into<String>, group: impl Into<String>) -> Self {
        UserDb {
            passwd: passwd.into(),
            group: group.into(),
        }
    }

    /// Reads `etc/passwd` and `etc/group` from the first of `layers` (topmost
    /// first, as overlayfs stacks them) that has each file.
    pub fn from_layers(layers: &[impl AsRef<Path>]) -> Self {
        let read = |name: &str| {
            layers
                .iter()
                .find_map(|l| std::fs::read_to_string(l.as_ref().join(name)).ok())
                .unwrap_or_default()
        };
        UserDb::new(read("etc/passwd"), read("etc/group"))
    }

    fn user(&self, name: &str) -> Option<(u32, u32)> {
        self.passwd.lines().find_map(|l| {
            (field(l, 0) == Some(name))
                .then(|| Some((field(l, 2)?.parse().ok()?, field(l, 3)?.parse().ok()?)))?
        })
    }

    fn gid_of_uid(&self, uid: u32) -> Option<u32> {
        self.passwd.lines().find_map(|l| {
            (field(l, 2)?.parse::<u32>().ok()? == uid)
                .then(|| field(l, 3)?.parse().ok())
                .flatten()
        })
    }

    /// A group name or number as a GID.
    pub fn group(&self, g: &str) -> Result<u32, String> {
        if let Ok(n) = g.parse() {
            return Ok(n);
        }
        self.group
            .lines()
            .find_map(|l| {
                (field(l, 0) == Some(g))
                    .then(|| field(l, 2)?.parse().ok())
                    .flatten()
            })
            .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))
    }

    /// `user[:group]` (names or numbers) as UID and GID; a user without a
    /// group gets its passwd GID (0 when unknown), as dockerd does.
    pub fn resolve(&self, spec: &str) -> Result<(u32, u32), String> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, default_gid) = match u.parse::<u32>() {
            Ok(n) => (n, self.gid_of_uid(n).unwrap_or(0)),
            Err(_) => self.user(u).ok_or_else(|| {
                format!("unable to find user {u}: no matching entries in passwd file")
            })?,
        };
        let gid = match g {
            Some(g) if !g.is_empty() => self.group(g)?,
            _ => default_gid,
        };
        Ok((uid, gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> UserDb {
        UserDb::new(
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n",
            "root:x:0:\nwww-data:x:34:\nstaff:x:50:\n",
        )
    }

    #[test]
    fn names_and_numbers_resolve_like_dockerd() {
        let d = db();
        assert_eq!(d.resolve("www").unwrap(), (33, 34));
        assert_eq!(d.resolve("www:staff").unwrap(), (33, 50));
        assert_eq!(d.resolve("1000").unwrap(), (1000, 0));
        assert_eq!(d.resolve("33").unwrap(), (33, 34));
        assert_eq!(d.resolve("1000:1000").unwrap(), (1000, 1000));
        assert_eq!(
            d.resolve("nobody").unwrap_err(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert_eq!(d.group("staff").unwrap(), 50);
    }
}
