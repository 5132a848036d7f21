//! Pure sums over images: each layer counted once, shared layers, and
//! the layers only some images hold.

use std::collections::HashMap;
use std::collections::HashSet;

use crate::images::unpack::chain_ids;
use crate::images::unpack::diff_ids;
use crate::images::ImageInfo;

/// One image's line of `docker system df -v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// Image ID.
    pub id: String,
    /// Sum of its layers.
    pub size: i64,
    /// Sum of its layers that other images hold too.
    pub shared_size: i64,
    /// How many containers use it.
    pub containers: i64,
}

/// An image's layers as (chain ID, size), bottom first. Layers past the
/// config's diff IDs (a malformed image) are keyed by their blob digest.
pub fn layers(info: &ImageInfo) -> Vec<(String, i64)> {
    let chain = chain_ids(&diff_ids(&info.config));
    info.layers
        .iter()
        .enumerate()
        .map(|(i, l)| (chain.get(i).cloned().unwrap_or(l.digest.clone()), l.size))
        .collect()
}

/// How many of `images` hold each layer.
fn holders(images: &[&ImageInfo]) -> HashMap<String, usize> {
    let mut n: HashMap<String, usize> = HashMap::new();
    for i in images {
        let own: HashSet<String> = layers(i).into_iter().map(|(c, _)| c).collect();
        for c in own {
            *n.entry(c).or_default() += 1;
        }
    }
    n
}

/// `LayersSize` (every layer once) and the per-image usage;
/// `containers` counts the containers per image ID.
pub fn image_usage(
    images: &[ImageInfo],
    containers: &HashMap<String, i64>,
) -> (i64, Vec<ImageUsage>) {
    let refs: Vec<&ImageInfo> = images.iter().collect();
    let holders = holders(&refs);
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut out = Vec::new();
    for i in images {
        let mut size = 0;
        let mut shared = 0;
        for (chain, s) in layers(i) {
            size += s;
            if holders.get(&chain).copied().unwrap_or(0) > 1 {
                shared += s;
            }
            if seen.insert(chain) {
                total += s;
            }
        }
        out.push(ImageUsage {
            id: i.id.clone(),
            size,
            shared_size: shared,
            containers: containers.get(&i.id).copied().unwrap_or(0),
        });
    }
    (total, out)
}

/// The layers of `gone` that none of `kept` holds, each once, as
/// (chain ID, size): what removing `gone` frees.
pub fn freed_layers(gone: &ImageInfo, kept: &[&ImageInfo]) -> Vec<(String, i64)> {
    let still = holders(kept);
    let mut seen = HashSet::new();
    layers(gone)
        .into_iter()
        .filter(|(c, _)| !still.contains_key(c) && seen.insert(c.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::images::LayerBlob;

    fn image(id: &str, diffs: &[&str], sizes: &[i64]) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            names: vec![],
            config: json!({"rootfs": {"type": "layers", "diff_ids": diffs}}),
            size: sizes.iter().sum(),
            manifest_digest: String::new(),
            layers: sizes
                .iter()
                .enumerate()
                .map(|(n, s)| LayerBlob {
                    digest: format!("sha256:{id}{n}"),
                    media_type: String::new(),
                    size: *s,
                })
                .collect(),
            target: None,
        }
    }

    #[test]
    fn shared_base_counted_once() {
        let a = image("a", &["sha256:base", "sha256:x"], &[100, 10]);
        let b = image("b", &["sha256:base", "sha256:y"], &[100, 20]);
        let c = image("c", &["sha256:x"], &[10]);
        let used = HashMap::from([("a".to_string(), 2)]);
        let (total, u) = image_usage(&[a, b, c], &used);
        // base once, x (chain base+x) and y; c's x alone is another chain.
        assert_eq!(total, 100 + 10 + 20 + 10);
        assert_eq!(
            (u[0].size, u[0].shared_size, u[0].containers),
            (110, 100, 2)
        );
        assert_eq!(
            (u[1].size, u[1].shared_size, u[1].containers),
            (120, 100, 0)
        );
        assert_eq!((u[2].size, u[2].shared_size), (10, 0));
    }

    #[test]
    fn only_unshared_layers_are_freed() {
        let a = image("a", &["sha256:base", "sha256:x"], &[100, 10]);
        let b = image("b", &["sha256:base"], &[100]);
        let freed = freed_layers(&a, &[&b]);
        assert_eq!(freed.len(), 1);
        assert_eq!(freed[0].1, 10);
        assert_eq!(freed_layers(&a, &[]).iter().map(|l| l.1).sum::<i64>(), 110);
    }
}
