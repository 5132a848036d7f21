//! Reading a container's json-file log back: the lines already written
//! (rotated files included, oldest first) with dockerd's `tail`, `since`
//! and `until`, then, when following, the lines written after.
//!
//! Following polls the open file rather than watching it: the log is
//! appended by this same daemon in whole lines, a poll costs one `read`,
//! and a rotation shows as the path naming a new file (the open handle
//! keeps reading the renamed old one to its end first).

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::BufRead;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::json::LogLine;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One logged line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its stream.
    pub source: Source,
    /// When it was read from the container.
    pub time: OffsetDateTime,
    /// The text, with its newline when it had one.
    pub line: Vec<u8>,
}

/// Which of the already-written lines to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last N lines (`None`: all). Applied before the time bounds,
    /// as dockerd does.
    pub tail: Option<usize>,
    /// Only lines at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only lines at or before this time; reading stops at the first later
    /// one.
    pub until: Option<OffsetDateTime>,
}

impl ReadOptions {
    /// Whether `e` is before `since` (skipped).
    fn too_early(&self, e: &Entry) -> bool {
        self.since.is_some_and(|s| e.time < s)
    }

    /// Whether `e` is after `until` (reading ends).
    fn too_late(&self, e: &Entry) -> bool {
        self.until.is_some_and(|u| e.time > u)
    }
}

/// How often a followed log is looked at.
const POLL: Duration = Duration::from_millis(150);
/// After the process exits, the log counts as complete once this long
/// passes without a new line (the copier drains the pipes first).
const QUIET_AFTER_EXIT: Duration = Duration::from_millis(300);
/// The longest a follower waits for the log to settle after the exit.
const DRAIN_LIMIT: Duration = Duration::from_millis(2500);

/// Parses one json-file line; lines that are not (a torn write) are skipped.
fn parse(raw: &[u8]) -> Option<Entry> {
    let l: LogLine = serde_json::from_slice(raw).ok()?;
    let time =
        OffsetDateTime::parse(&l.time, &time::format_description::well_known::Rfc3339).ok()?;
    Some(Entry {
        source: if l.stream == "stderr" {
            Source::Stderr
        } else {
            Source::Stdout
        },
        time,
        line: l.log.into_bytes(),
    })
}

/// The rotated files of `path` (`.1`, `.2`, ...), oldest first.
fn rotated(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for i in 1.. {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out.reverse();
    out
}

/// Reads the log at `path` as `opts` asks and returns the lines with a
/// [`Follower`] placed right after the last line read. A log that does not
/// exist (yet) reads as empty.
pub fn read(path: &Path, opts: &ReadOptions) -> std::io::Result<(Vec<Entry>, Follower)> {
    let mut follower = Follower::at_start(path);
    let mut raw: VecDeque<Vec<u8>> = VecDeque::new();
    let mut keep = |line: Vec<u8>| {
        if opts.tail == Some(0) {
            return;
        }
        raw.push_back(line);
        if opts.tail.is_some_and(|n| raw.len() > n) {
            raw.pop_front();
        }
    };
    for old in rotated(path) {
        let Ok(f) = File::open(&old) else { continue };
        for line in std::io::BufReader::new(f).split(b'\n') {
            keep(line?);
        }
    }
    for line in follower.read_current()? {
        keep(line);
    }
    let mut out = Vec::new();
    for e in raw.iter().filter_map(|r| parse(r)) {
        if opts.too_late(&e) {
            break;
        }
        if !opts.too_early(&e) {
            out.push(e);
        }
    }
    Ok((out, follower))
}

/// A position in a log, for reading what gets written after it.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// A follower that reads the current log file from its beginning
    /// (a container that just appeared: everything it wrote is new).
    pub fn at_start(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            file: None,
            inode: 0,
            partial: Vec::new(),
        }
    }

    /// Complete raw lines added since the last call.
    fn read_current(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut buf = Vec::new();
        if let Some(f) = self.file.as_mut() {
            f.read_to_end(&mut buf)?;
        }
        // The path naming another file means the log rotated: the old one
        // was read to its end above; carry on with the new one.
        let now = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if now.is_some() && now != Some(self.inode) {
            if let Ok(mut f) = File::open(&self.path) {
                self.inode = f.metadata()?.ino();
                f.read_to_end(&mut buf)?;
                self.file = Some(f);
            }
        }
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=pos).collect();
            line.pop();
            lines.push(line);
        }
        Ok(lines)
    }

    /// Lines added since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<Entry>> {
        Ok(self
            .read_current()?
            .iter()
            .filter_map(|r| parse(r))
            .collect())
    }
}

/// Sends the lines written after `follower`'s position to `tx`, each
/// through `wrap`, until the process has exited (`exited` resolves) and the
/// log has settled, a line is later than `opts.until`, or the receiver is
/// gone (the client hung up).
pub async fn follow<T, F>(
    mut follower: Follower,
    opts: ReadOptions,
    exited: F,
    tx: mpsc::Sender<T>,
    wrap: impl Fn(Entry) -> T,
) where
    F: Future<Output = ()>,
{
    tokio::pin!(exited);
    let mut exited_at: Option<tokio::time::Instant> = None;
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        let entries = follower.poll().unwrap_or_default();
        if !entries.is_empty() {
            quiet_since = tokio::time::Instant::now();
        }
        for e in entries {
            if opts.too_late(&e) {
                return;
            }
            if opts.too_early(&e) {
                continue;
            }
            if tx.send(wrap(e)).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        let now = tokio::time::Instant::now();
        if let Some(at) = exited_at {
            if now - quiet_since >= QUIET_AFTER_EXIT || now - at >= DRAIN_LIMIT {
                return;
            }
            tokio::time::sleep(POLL.min(QUIET_AFTER_EXIT / 2)).await;
            continue;
        }
        tokio::select! {
            _ = &mut exited => {
                exited_at = Some(tokio::time::Instant::now());
                quiet_since = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn line(text: &str, stream: &str, secs: i64) -> String {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs);
        let l = LogLine {
            log: format!("{text}\n"),
            stream: stream.into(),
            time: swarm::model::format_time(t),
        };
        format!("{}\n", serde_json::to_string(&l).unwrap())
    }

    fn texts(es: &[Entry]) -> Vec<String> {
        es.iter()
            .map(|e| String::from_utf8_lossy(&e.line).trim_end().to_string())
            .collect()
    }

    fn at(secs: i64) -> Option<OffsetDateTime> {
        Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs))
    }

    #[test]
    fn rotated_files_first_then_tail_then_time_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(format!("{}.2", path.display()), line("a", "stdout", 1)).unwrap();
        std::fs::write(format!("{}.1", path.display()), line("b", "stderr", 2)).unwrap();
        std::fs::write(&path, line("c", "stdout", 3) + &line("d", "stdout", 4)).unwrap();

        let (all, _) = read(&path, &ReadOptions::default()).unwrap();
        assert_eq!(texts(&all), vec!["a", "b", "c", "d"]);
        assert_eq!(all[1].source, Source::Stderr);

        let tail = ReadOptions {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(texts(&read(&path, &tail).unwrap().0), vec!["c", "d"]);
        let none = ReadOptions {
            tail: Some(0),
            ..Default::default()
        };
        assert!(read(&path, &none).unwrap().0.is_empty());

        let window = ReadOptions {
            since: at(2),
            until: at(3),
            ..Default::default()
        };
        assert_eq!(texts(&read(&path, &window).unwrap().0), vec!["b", "c"]);
        // Tail first: the last two lines, then only those since 4.
        let both = ReadOptions {
            tail: Some(2),
            since: at(4),
            ..Default::default()
        };
        assert_eq!(texts(&read(&path, &both).unwrap().0), vec!["d"]);
    }

    #[test]
    fn follower_sees_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(&path, line("a", "stdout", 1)).unwrap();
        let (first, mut f) = read(&path, &ReadOptions::default()).unwrap();
        assert_eq!(texts(&first), vec!["a"]);
        assert!(f.poll().unwrap().is_empty());

        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let half = line("b", "stdout", 2);
        let (x, y) = half.split_at(10);
        w.write_all(x.as_bytes()).unwrap();
        assert!(f.poll().unwrap().is_empty(), "a torn line waits");
        w.write_all(y.as_bytes()).unwrap();
        assert_eq!(texts(&f.poll().unwrap()), vec!["b"]);

        // Rotate: the rest of the old file, then the new one.
        w.write_all(line("c", "stdout", 3).as_bytes()).unwrap();
        std::fs::rename(&path, format!("{}.1", path.display())).unwrap();
        std::fs::write(&path, line("d", "stdout", 4)).unwrap();
        assert_eq!(texts(&f.poll().unwrap()), vec!["c", "d"]);
    }

    #[test]
    fn missing_log_reads_empty_and_is_picked_up_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let (none, mut f) = read(&path, &ReadOptions::default()).unwrap();
        assert!(none.is_empty());
        std::fs::write(&path, line("late", "stdout", 1)).unwrap();
        assert_eq!(texts(&f.poll().unwrap()), vec!["late"]);
    }

    #[tokio::test]
    async fn follow_ends_after_exit_once_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(&path, "").unwrap();
        let (_, f) = read(&path, &ReadOptions::default()).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(follow(
            f,
            ReadOptions::default(),
            async move {
                let _ = done_rx.await;
            },
            tx,
            |e| e,
        ));
        std::fs::write(&path, line("x", "stdout", 1)).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&[got]), vec!["x"]);
        let _ = done_tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(rx.recv().await.is_none());
    }
}
