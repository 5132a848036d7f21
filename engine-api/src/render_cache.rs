//! Rendered JSON of stored objects, reused while an object's version is
//! unchanged: clients poll `GET /services` and most services have not
//! changed between two polls.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

/// One rendering per object ID: the latest asked for.
#[derive(Debug, Default)]
pub struct RenderCache {
    inner: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    version: u64,
    variant: u32,
    json: Arc<str>,
}

impl RenderCache {
    /// The JSON of object `id` at `version` rendered as `variant` (API
    /// version and options), from the cache or made by `render`.
    pub fn get_or_render(
        &self,
        id: &str,
        version: u64,
        variant: u32,
        render: impl FnOnce() -> String,
    ) -> Arc<str> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get(id) {
            if e.version == version && e.variant == variant {
                return e.json.clone();
            }
        }
        let json: Arc<str> = render().into();
        map.insert(
            id.to_string(),
            Entry {
                version,
                variant,
                json: json.clone(),
            },
        );
        json
    }

    /// Forgets objects that are gone once the cache holds many of them.
    pub fn prune(&self, live: usize, is_live: impl Fn(&str) -> bool) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > live.saturating_mul(2) + 64 {
            map.retain(|id, _| is_live(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_again_only_when_version_or_variant_changes() {
        let c = RenderCache::default();
        let calls = std::cell::Cell::new(0);
        let r = |text: &str| {
            calls.set(calls.get() + 1);
            text.to_string()
        };
        assert_eq!(&*c.get_or_render("a", 1, 50, || r("v1")), "v1");
        assert_eq!(&*c.get_or_render("a", 1, 50, || r("again")), "v1");
        assert_eq!(&*c.get_or_render("a", 2, 50, || r("v2")), "v2");
        assert_eq!(&*c.get_or_render("a", 2, 41, || r("old api")), "old api");
        assert_eq!(calls.get(), 3);
        for i in 0..200 {
            c.get_or_render(&format!("gone{i}"), 1, 50, String::new);
        }
        c.prune(1, |id| id == "a");
        assert_eq!(&*c.get_or_render("a", 2, 41, || r("x")), "old api");
    }
}
