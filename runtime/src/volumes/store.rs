//! The volumes on disk: `<root>/<name>/_data` holds a volume's data and
//! `<root>/<name>/volume.json` what dockerd keeps in its metadata database
//! (creation time, labels, options). A directory without the record (made
//! before records existed) is still a volume: its directory's change time
//! stands in for the creation time, as dockerd's local driver reports it.

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Error;
use super::NewVolume;
use super::Result;
use super::Volume;
use super::ANONYMOUS_LABEL;
use super::LOCAL_DRIVER;

const DATA_DIR: &str = "_data";
const RECORD: &str = "volume.json";
/// The option keys dockerd's local driver accepts.
const LOCAL_OPTIONS: &[&str] = &["type", "o", "device", "size"];

/// Creation and removal are check-then-act on the filesystem; the API
/// handlers and the executor's task controllers run in one process, so one
/// lock for the process makes "exists?" and "make it" one step.
static WRITE: Mutex<()> = Mutex::new(());

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// RFC 3339 with nanoseconds.
    created_at: String,
    labels: Option<HashMap<String, String>>,
    options: Option<HashMap<String, String>>,
}

/// The local volumes under one root (`<data-root>/volumes`).
#[derive(Clone)]
pub struct VolumeStore {
    root: PathBuf,
    events: Option<swarm::events::EventBus>,
}

impl std::fmt::Debug for VolumeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeStore")
            .field("root", &self.root)
            .finish()
    }
}

/// Whether the local driver can use `name`: dockerd's
/// `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (so at least two characters).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl VolumeStore {
    /// The store of volumes under `root`. Touches nothing on disk.
    pub fn new(root: &Path) -> Self {
        VolumeStore {
            root: root.to_path_buf(),
            events: None,
        }
    }

    /// The same store, reporting `create` and `destroy` on `bus` as
    /// dockerd's volume events.
    pub fn with_events(mut self, bus: swarm::events::EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    fn event(&self, action: &str, name: &str) {
        if let Some(bus) = &self.events {
            let actor = swarm::events::Actor::new(name).with("driver", LOCAL_DRIVER);
            bus.log("volume", action, actor);
        }
    }

    /// Where volume `name`'s data lives (whether or not it exists).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA_DIR)
    }

    /// Makes the volume `req` asks for, or returns the existing one of that
    /// name unchanged (dockerd's create is idempotent for the same driver).
    /// An anonymous volume gets a random 64-hex name and dockerd's
    /// anonymous label.
    pub fn create(&self, req: &NewVolume) -> Result<Volume> {
        // The CLI sends `{}` for none: dockerd shows that as null.
        let given = req.labels.clone().filter(|l| !l.is_empty());
        let (name, labels) = match &req.name {
            Some(n) if !n.is_empty() => (n.clone(), given),
            _ => {
                let mut labels = given.unwrap_or_default();
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                (crate::exec::ids::random_hex(32), Some(labels))
            }
        };
        if !req.driver.is_empty() && req.driver != LOCAL_DRIVER {
            return Err(Error::NoSuchDriver {
                name,
                driver: req.driver.clone(),
            });
        }
        if name.len() == 1 && name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::NameTooShort(name));
        }
        if !valid_name(&name) {
            return Err(Error::InvalidName(name));
        }
        let options = req.options.clone().filter(|o| !o.is_empty());
        if let Some(opts) = &options {
            if let Some(key) = opts.keys().find(|k| !LOCAL_OPTIONS.contains(&k.as_str())) {
                return Err(Error::InvalidOption {
                    name,
                    key: key.clone(),
                });
            }
            return Err(Error::MountOptions(name));
        }
        let _held = WRITE.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(v) = self.get(&name) {
            return Ok(v);
        }
        let dir = self.root.join(&name);
        std::fs::create_dir_all(dir.join(DATA_DIR)).map_err(Error::io("create", &name))?;
        let created_at = OffsetDateTime::now_utc();
        let record = Record {
            created_at: created_at.format(&Rfc3339).unwrap_or_default(),
            labels: labels.clone(),
            options: None,
        };
        let json = serde_json::to_vec(&record).map_err(|e| Error::io("create", &name)(e.into()))?;
        // Written aside and renamed: a crash never leaves half a record.
        let tmp = dir.join(format!("{RECORD}.tmp"));
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, dir.join(RECORD)))
            .map_err(Error::io("create", &name))?;
        self.event("create", &name);
        Ok(Volume {
            mountpoint: dir.join(DATA_DIR),
            name,
            created_at,
            labels,
            options: None,
        })
    }

    /// Volume `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        // An invalid name could step out of the root ("..", "a/b").
        if !valid_name(name) {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        let dir = self.root.join(name);
        let meta = match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => m,
            _ => return Err(Error::NoSuchVolume(name.to_string())),
        };
        let record: Option<Record> = std::fs::read(dir.join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (created_at, labels, options) = match record {
            Some(r) => (
                OffsetDateTime::parse(&r.created_at, &Rfc3339)
                    .unwrap_or_else(|_| changed_at(&meta)),
                r.labels,
                r.options,
            ),
            None => (changed_at(&meta), None, None),
        };
        Ok(Volume {
            name: name.to_string(),
            mountpoint: dir.join(DATA_DIR),
            created_at,
            labels,
            options,
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", "")(e)),
        };
        let mut out: Vec<Volume> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| self.get(&name).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes volume `name` and its data. Whether containers still use it
    /// is the caller's to check first.
    pub fn remove(&self, name: &str) -> Result<()> {
        let _held = WRITE.lock().unwrap_or_else(|p| p.into_inner());
        self.get(name)?;
        std::fs::remove_dir_all(self.root.join(name)).map_err(Error::io("remove", name))?;
        self.event("destroy", name);
        Ok(())
    }
}

/// Bytes used by the files under `dir` (directories themselves not
/// counted, a file with several links once), as dockerd sizes a volume.
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.nlink() < 2 || seen.insert(meta.ino()) {
                total += meta.len();
            }
        }
    }
    total
}

fn changed_at(meta: &std::fs::Metadata) -> OffsetDateTime {
    use std::os::unix::fs::MetadataExt;
    let nanos = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, labels: &[(&str, &str)]) -> NewVolume {
        NewVolume {
            name: Some(name.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn names_follow_the_local_driver() {
        assert!(valid_name("db-data_1.x"));
        assert!(!valid_name("a"), "one character is too short for dockerd");
        for bad in ["", "-db", "a/b", "..", "a b", "/abs"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn create_get_list_remove_persist_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(root.path());
        let v = store
            .create(&named("app_db", &[("com.docker.stack.namespace", "app")]))
            .unwrap();
        assert_eq!(v.mountpoint, root.path().join("app_db/_data"));
        assert!(v.mountpoint.is_dir());
        assert!(!v.is_anonymous());

        // A second store on the same root (a restarted daemon) sees it.
        let again = VolumeStore::new(root.path());
        let got = again.get("app_db").unwrap();
        assert_eq!(got, v);
        assert!(
            v.created_at_text().ends_with('Z'),
            "{}",
            v.created_at_text()
        );

        // Creating it again returns it unchanged, labels and all.
        let same = again.create(&named("app_db", &[("other", "x")])).unwrap();
        assert_eq!(same.labels, v.labels);

        let anon = again.create(&NewVolume::default()).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.is_anonymous());
        let names: Vec<String> = again.list().unwrap().into_iter().map(|v| v.name).collect();
        let mut expected = vec!["app_db".to_string(), anon.name.clone()];
        expected.sort();
        assert_eq!(names, expected);

        std::fs::write(v.mountpoint.join("f"), b"12345").unwrap();
        std::fs::create_dir(v.mountpoint.join("d")).unwrap();
        std::fs::write(v.mountpoint.join("d/g"), b"123").unwrap();
        std::fs::hard_link(v.mountpoint.join("d/g"), v.mountpoint.join("h")).unwrap();
        assert_eq!(dir_size(&v.mountpoint), 8);

        again.remove("app_db").unwrap();
        assert!(matches!(again.get("app_db"), Err(Error::NoSuchVolume(_))));
        assert!(matches!(
            again.remove("app_db"),
            Err(Error::NoSuchVolume(_))
        ));
    }

    #[test]
    fn directories_without_a_record_are_volumes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("old/_data")).unwrap();
        std::fs::write(root.path().join("stray-file"), b"").unwrap();
        let store = VolumeStore::new(root.path());
        let all = store.list().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "old");
        assert_eq!(all[0].labels, None);
    }

    #[test]
    fn refusals_carry_dockerds_reasons() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(root.path());
        assert!(matches!(
            store.create(&named("a/b", &[])),
            Err(Error::InvalidName(_))
        ));
        let mut other = named("vol", &[]);
        other.driver = "nfs".into();
        assert_eq!(
            store.create(&other).unwrap_err().to_string(),
            "create vol: error looking up volume plugin nfs: plugin \"nfs\" not found"
        );
        let mut opts = named("vol", &[]);
        opts.options = Some([("bogus".to_string(), "1".to_string())].into());
        assert_eq!(
            store.create(&opts).unwrap_err().to_string(),
            "create vol: invalid option: \"bogus\""
        );
        assert_eq!(
            store.create(&named("a", &[])).unwrap_err().to_string(),
            "create a: volume name is too short, names should be at least two alphanumeric characters"
        );
        // The CLI's empty label map reads back as none, as with dockerd.
        let mut empty = named("plain", &[]);
        empty.labels = Some(HashMap::new());
        empty.options = Some(HashMap::new());
        let v = store.create(&empty).unwrap();
        assert_eq!((v.labels, v.options), (None, None));
        store.remove("plain").unwrap();
        // Nothing is left behind by a refusal; "../x" never leaves the root.
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(store.get("../x"), Err(Error::NoSuchVolume(_))));
    }
}
