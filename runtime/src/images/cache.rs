//! What the executor reads once per image instead of once per task: the
//! config a manifest resolves to (content is addressed by its digest, so an
//! entry never goes stale) and the layer stacks already unpacked.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Mutex;

use super::ImageInfo;

/// Entries kept before a map starts over: a node holds few images, so this
/// only bounds memory against a stream of distinct ones.
const MAX_ENTRIES: usize = 512;

/// The per-client cache of image content.
#[derive(Default)]
pub(crate) struct ImageCache {
    resolved: Mutex<HashMap<String, ImageInfo>>,
    unpacked: Mutex<HashSet<String>>,
}

fn resolved_key(digest: &str, media_type: &str) -> String {
    format!("{media_type} {digest}")
}

impl ImageCache {
    /// The image a record target resolved to before, if any.
    pub(crate) fn resolved(&self, digest: &str, media_type: &str) -> Option<ImageInfo> {
        let map = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&resolved_key(digest, media_type)).cloned()
    }

    /// Remembers what a record target resolved to.
    pub(crate) fn put_resolved(&self, digest: &str, media_type: &str, info: &ImageInfo) {
        let mut map = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(resolved_key(digest, media_type), info.clone());
    }

    /// Whether the snapshot stack topped by chain ID `top` was seen
    /// committed. It can be collected later (its image removed): a
    /// container prepared on it then fails and calls [`Self::forget_unpacked`].
    pub(crate) fn is_unpacked(&self, top: &str) -> bool {
        let set = self.unpacked.lock().unwrap_or_else(|e| e.into_inner());
        set.contains(top)
    }

    /// Records that the stack topped by `top` is committed.
    pub(crate) fn set_unpacked(&self, top: &str) {
        let mut set = self.unpacked.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= MAX_ENTRIES {
            set.clear();
        }
        set.insert(top.to_string());
    }

    /// Drops `top`, found missing.
    pub(crate) fn forget_unpacked(&self, top: &str) {
        let mut set = self.unpacked.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(top);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            names: vec![],
            config: serde_json::json!({}),
            size: 0,
            manifest_digest: "sha256:m".into(),
            layers: vec![],
            target: None,
        }
    }

    #[test]
    fn resolved_entries_are_keyed_by_digest_and_media_type() {
        let c = ImageCache::default();
        c.put_resolved("sha256:a", "index", &info("sha256:c1"));
        assert_eq!(c.resolved("sha256:a", "index").unwrap().id, "sha256:c1");
        assert!(c.resolved("sha256:a", "manifest").is_none());
        assert!(c.resolved("sha256:b", "index").is_none());
    }

    #[test]
    fn unpacked_tops_can_be_forgotten() {
        let c = ImageCache::default();
        assert!(!c.is_unpacked("sha256:t"));
        c.set_unpacked("sha256:t");
        assert!(c.is_unpacked("sha256:t"));
        c.forget_unpacked("sha256:t");
        assert!(!c.is_unpacked("sha256:t"));
    }
}
