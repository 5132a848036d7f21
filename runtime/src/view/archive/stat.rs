//! The `X-Docker-Container-Path-Stat` of `docker cp`: name, size, Go's
//! `os.FileMode` bits, modification time and, for a symlink, its target
//! resolved in the container.

use std::os::unix::fs::MetadataExt;

use serde::Serialize;

/// What dockerd reports about a path in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStat {
    /// The last element of the path as asked.
    pub name: String,
    /// Its size (of the link itself for a symlink).
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds, UTC.
    pub mtime: String,
    /// For a symlink, where it leads inside the container; else empty.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The stat of `meta` (from `lstat`) for `name`.
    pub fn new(name: &str, meta: &std::fs::Metadata, link_target: String) -> PathStat {
        let mtime = time::OffsetDateTime::from_unix_timestamp_nanos(
            meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        PathStat {
            name: name.to_string(),
            size: meta.size() as i64,
            mode: go_file_mode(meta.mode()),
            mtime: rfc3339_nano(mtime),
            link_target,
        }
    }

    /// The header value: base64 (standard alphabet) of the JSON.
    pub fn header_value(&self) -> String {
        use base64::Engine;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

/// Go's `RFC3339Nano`: trailing zeros of the fraction dropped.
fn rfc3339_nano(t: time::OffsetDateTime) -> String {
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = format!("{:09}", t.nanosecond());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{frac}Z")
    }
}

/// Unix `st_mode` to Go's `os.FileMode`: permission bits stay, the type
/// and the set-ID and sticky bits move to Go's high bits.
pub fn go_file_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & 0o170000 {
        0o040000 => DIR,
        0o120000 => SYMLINK,
        0o060000 => DEVICE,
        0o020000 => DEVICE | CHAR_DEVICE,
        0o010000 => NAMED_PIPE,
        0o140000 => SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        m |= SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= STICKY;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_like_go() {
        assert_eq!(go_file_mode(0o100644), 0o644);
        assert_eq!(go_file_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o041777), (1 << 31) | (1 << 20) | 0o777);
        assert_eq!(go_file_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(0o020666), (1 << 26) | (1 << 21) | 0o666);
    }

    #[test]
    fn json_and_header() {
        let s = PathStat {
            name: "hello".into(),
            size: 3,
            mode: 0o644,
            mtime: rfc3339_nano(
                time::OffsetDateTime::from_unix_timestamp_nanos(1_500_000_000_250_000_000).unwrap(),
            ),
            link_target: String::new(),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"name":"hello","size":3,"mode":420,"mtime":"2017-07-14T02:40:00.25Z","linkTarget":""}"#
        );
        use base64::Engine;
        let back = base64::engine::general_purpose::STANDARD
            .decode(s.header_value())
            .unwrap();
        assert_eq!(back, json.as_bytes());
    }
}
