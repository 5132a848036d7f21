//! `docker image history`: the config's `history` entries, newest first,
//! each non-empty one paired with the size of its layer, as dockerd lists
//! them.

use serde::Deserialize;

use super::ImageInfo;

/// One row of `GET /images/{name}/history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// The image ID on the newest row, `<missing>` on the others (shoal
    /// keeps no parent images, as dockerd has none for pulled images).
    pub id: String,
    /// When the step ran, Unix seconds.
    pub created: i64,
    /// The step's command.
    pub created_by: String,
    /// The image's tags on the newest row; empty on the others.
    pub tags: Vec<String>,
    /// Bytes the step's layer holds (0 for an empty layer).
    pub size: i64,
    /// The step's comment.
    pub comment: String,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    empty_layer: bool,
}

/// The history rows of `info`, newest first. `layer_sizes` are the sizes
/// of the image's layers bottom first; a history with more non-empty
/// entries than layers gets size 0 for the extra ones.
pub fn history(info: &ImageInfo, layer_sizes: &[i64]) -> Vec<HistoryItem> {
    let entries: Vec<Entry> = info
        .config
        .get("history")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut layer = 0;
    let mut out: Vec<HistoryItem> = entries
        .into_iter()
        .map(|e| {
            let size = if e.empty_layer {
                0
            } else {
                layer += 1;
                layer_sizes.get(layer - 1).copied().unwrap_or(0)
            };
            HistoryItem {
                id: "<missing>".into(),
                created: unix(e.created.as_deref()),
                created_by: e.created_by,
                tags: Vec::new(),
                size,
                comment: e.comment,
            }
        })
        .collect();
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = info.id.clone();
        top.tags = info.repo_tags();
    }
    out
}

impl crate::Containerd {
    /// `docker image history NAME`: rows newest first, sizes from the
    /// image's layer blobs.
    pub async fn image_history(&self, name: &str) -> crate::Result<Vec<HistoryItem>> {
        let (info, _) = self.image_find(name).await?;
        let sizes: Vec<i64> = info.layers.iter().map(|l| l.size).collect();
        Ok(history(&info, &sizes))
    }
}

fn unix(created: Option<&str>) -> i64 {
    created
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, |t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn info(config: serde_json::Value) -> ImageInfo {
        ImageInfo {
            id: "sha256:abc".into(),
            names: vec!["docker.io/library/a:1".into()],
            config,
            size: 0,
            manifest_digest: String::new(),
            layers: Vec::new(),
            target: None,
        }
    }

    #[test]
    fn newest_first_with_sizes_for_layers_only() {
        let i = info(json!({"history": [
            {"created": "2020-01-01T00:00:00Z", "created_by": "ADD rootfs"},
            {"created": "2020-01-02T00:00:00Z", "created_by": "CMD sh", "empty_layer": true},
            {"created": "2020-01-03T00:00:00Z", "created_by": "RUN x", "comment": "c"},
        ]}));
        let h = history(&i, &[100, 20]);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].id, "sha256:abc");
        assert_eq!(h[0].tags, vec!["a:1".to_string()]);
        assert_eq!((h[0].size, h[0].comment.as_str()), (20, "c"));
        assert_eq!((h[1].id.as_str(), h[1].size), ("<missing>", 0));
        assert_eq!((h[2].created, h[2].size), (1_577_836_800, 100));
        assert!(h[2].tags.is_empty());
    }

    #[test]
    fn no_history_no_rows() {
        assert!(history(&info(json!({})), &[1]).is_empty());
    }
}
