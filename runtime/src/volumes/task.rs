//! A task's `type=volume` mounts made into local volumes before its
//! container is created: named ones are found or made with the labels and
//! options of the mount (a stack's carry `com.docker.stack.namespace`),
//! anonymous ones are made fresh, and each empty one is seeded from the
//! image unless the mount says `nocopy`.

use std::collections::HashMap;
use std::path::PathBuf;

use super::seed;
use super::Error;
use super::NewVolume;
use super::Result;
use super::VolumeStore;

/// One volume mount of a task, its placeholders already expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskVolume {
    /// Path inside the container.
    pub target: String,
    /// The volume (`None`: anonymous) and how to make it.
    pub volume: NewVolume,
    /// The mount's `nocopy`: never seed from the image.
    pub no_copy: bool,
}

/// Makes or finds every volume of `mounts` and seeds the empty ones from
/// the image's `layers` (topmost first). Returns each mount's target with
/// the host path of its volume's data.
pub fn prepare(
    store: &VolumeStore,
    mounts: &[TaskVolume],
    layers: &[PathBuf],
) -> Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::with_capacity(mounts.len());
    for m in mounts {
        let v = store.create(&m.volume)?;
        if !m.no_copy {
            seed::seed(layers, &m.target, &v.mountpoint).map_err(Error::io("populate", &v.name))?;
        }
        out.insert(m.target.clone(), v.mountpoint);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_volumes_are_made_once_and_seeded_when_empty() {
        let root = tempfile::tempdir().unwrap();
        let layer = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(layer.path().join("etc/app")).unwrap();
        std::fs::write(layer.path().join("etc/app/conf"), b"default").unwrap();
        let store = VolumeStore::new(root.path());
        let labels: HashMap<String, String> =
            [("com.docker.stack.namespace".to_string(), "app".to_string())].into();
        let mounts = vec![
            TaskVolume {
                target: "/etc/app".into(),
                volume: NewVolume {
                    name: Some("app_conf".into()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                no_copy: false,
            },
            TaskVolume {
                target: "/etc/app2".into(),
                volume: NewVolume::default(),
                no_copy: false,
            },
            TaskVolume {
                target: "/etc".into(),
                volume: NewVolume {
                    name: Some("bare".into()),
                    ..Default::default()
                },
                no_copy: true,
            },
        ];
        let layers = vec![layer.path().to_path_buf()];
        let paths = prepare(&store, &mounts, &layers).unwrap();
        assert_eq!(paths["/etc/app"], root.path().join("app_conf/_data"));
        assert_eq!(
            std::fs::read(paths["/etc/app"].join("conf")).unwrap(),
            b"default"
        );
        assert_eq!(store.get("app_conf").unwrap().labels, Some(labels));
        // nocopy: the image's /etc stays out.
        assert_eq!(std::fs::read_dir(&paths["/etc"]).unwrap().count(), 0);
        assert!(store.list().unwrap().iter().any(|v| v.is_anonymous()));

        // The task's next container finds the data as it was left.
        std::fs::write(paths["/etc/app"].join("conf"), b"changed").unwrap();
        let again = prepare(&store, &mounts[..1], &layers).unwrap();
        assert_eq!(
            std::fs::read(again["/etc/app"].join("conf")).unwrap(),
            b"changed"
        );
    }
}
