//! dockerd's json-file log format: one JSON object per line with the text
//! (newline included), the stream and an RFC 3339 time with nanoseconds.

use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

/// One logged line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The text, with its trailing newline when it had one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the line was read, RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

/// The log file of container `id` in its directory `dir`.
pub fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

/// Size-based rotation: `<file>.1` ... `<file>.<keep-1>` hold older output.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// Rotate when the current file reaches this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 10 * 1024 * 1024,
            max_files: 3,
        }
    }
}

/// Appends lines to a log file, rotating it by size.
pub(super) struct Writer {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    rotation: Rotation,
}

impl Writer {
    pub(super) fn open(path: PathBuf, rotation: Rotation) -> std::io::Result<Writer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path,
            file,
            size,
            rotation,
        })
    }

    pub(super) fn write(&mut self, line: &LogLine) -> std::io::Result<()> {
        let mut buf = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        buf.push(b'\n');
        if self.size > 0 && self.size + buf.len() as u64 > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.max_files.max(1);
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if keep == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(name(keep - 1));
        for i in (1..keep - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1))?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The current time as json-file writes it.
pub(super) fn now() -> String {
    swarm::model::format_time(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> LogLine {
        LogLine {
            log: format!("{s}\n"),
            stream: "stdout".into(),
            time: now(),
        }
    }

    #[test]
    fn rotation_keeps_max_files_and_newest_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path(), "c1");
        let mut w = Writer::open(
            path.clone(),
            Rotation {
                max_size: 200,
                max_files: 3,
            },
        )
        .unwrap();
        for i in 0..40 {
            w.write(&line(&format!("line {i}"))).unwrap();
        }
        assert!(path.exists());
        assert!(dir.path().join("c1-json.log.1").exists());
        assert!(dir.path().join("c1-json.log.2").exists());
        assert!(!dir.path().join("c1-json.log.3").exists());
        let cur = std::fs::read_to_string(&path).unwrap();
        assert!(cur.contains("line 39"), "{cur}");
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        let first: LogLine = serde_json::from_str(cur.lines().next().unwrap()).unwrap();
        assert_eq!(first.stream, "stdout");
    }
}
