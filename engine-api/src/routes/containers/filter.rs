//! `GET /containers/json` selection: `all`, `limit` and the filters dockerd
//! accepts for `docker ps`, applied to task containers.

use runtime::view::ContainerInfo;

use crate::error::ApiError;
use crate::filters::loose_match;
use crate::filters::Filters;

/// The filter keys `docker ps` may send.
const ACCEPTED: &[&str] = &[
    "ancestor",
    "before",
    "exited",
    "id",
    "isolation",
    "label",
    "name",
    "status",
    "health",
    "since",
    "volume",
    "network",
    "is-task",
    "publish",
    "expose",
];

const STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

/// A parsed list request.
#[derive(Debug)]
pub struct Selection {
    filters: Filters,
    all: bool,
    limit: usize,
    exited: Vec<i64>,
}

impl Selection {
    /// From the query's `filters`, `all` and `limit`, with dockerd's
    /// errors for unknown keys and bad values.
    pub fn parse(filters: Option<&str>, all: bool, limit: Option<&str>) -> Result<Self, ApiError> {
        let filters = Filters::parse(filters)?;
        filters.validate(ACCEPTED)?;
        let mut exited = Vec::new();
        for v in filters.get("exited") {
            let code = v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid filter 'exited={v}': strconv.Atoi: parsing \"{v}\": invalid syntax"
                ))
            })?;
            exited.push(code);
        }
        for v in filters.get("status") {
            if !STATES.contains(&v.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'status={v}': invalid value for state ({v}): must be one of {}",
                    STATES.join(", ")
                )));
            }
        }
        for v in filters.get("is-task") {
            if v != "true" && v != "false" {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'is-task={v}'"
                )));
            }
        }
        let limit = match limit.filter(|l| !l.is_empty()) {
            Some(l) => l.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("strconv.Atoi: parsing \"{l}\": invalid syntax"))
            })?,
            None => 0,
        };
        // A status filter or a limit also shows stopped containers.
        let all = all || filters.contains("status") || limit > 0;
        Ok(Selection {
            filters,
            all,
            limit: limit.max(0) as usize,
            exited,
        })
    }

    fn keeps(&self, c: &ContainerInfo, image_id: &str) -> bool {
        let f = &self.filters;
        let running = c.state.status.is_running();
        let any =
            |key: &str, ok: &dyn Fn(&str) -> bool| !f.contains(key) || f.get(key).any(|v| ok(v));
        let slash = format!("/{}", c.name);
        (self.all || running)
            && any("name", &|p| loose_match(p, &c.name) || loose_match(p, &slash))
            && any("id", &|p| loose_match(p, &c.id))
            && any("status", &|s| s == c.state.status.as_str())
            // Every container here is a swarm task.
            && any("is-task", &|v| v == "true")
            && f.labels("label", Some(&c.labels))
            && any("ancestor", &|a| {
                a == super::render::image_name(c)
                    || a == c.image
                    || (!image_id.is_empty() && image_id.trim_start_matches("sha256:").starts_with(a.trim_start_matches("sha256:")))
            })
            && any("volume", &|v| {
                c.spec.mounts.iter().any(|m| m.destination == v || m.name.as_deref() == Some(v) || m.source == v)
            })
            && any("health", &|h| h == "none")
            && any("isolation", &|i| i == "default")
            // No published or exposed ports and no networks are tracked.
            && !f.contains("network")
            && !f.contains("publish")
            && !f.contains("expose")
            && (self.exited.is_empty()
                || (!running
                    && c.state.started_at.is_some()
                    && self.exited.contains(&c.state.exit_code)))
    }

    /// The containers to list, in order. `all` is newest first; `before`
    /// and `since` name a container by ID or name and cut the list there.
    pub fn apply<'a>(
        &self,
        all: &'a [ContainerInfo],
        image_id: &dyn Fn(&ContainerInfo) -> String,
    ) -> Result<Vec<&'a ContainerInfo>, ApiError> {
        let bound = |key: &str| -> Result<Option<usize>, ApiError> {
            match self.filters.get(key).next() {
                None => Ok(None),
                Some(v) => {
                    let c = runtime::view::resolve(all, v).map_err(ApiError::from)?;
                    Ok(all.iter().position(|x| x.id == c.id))
                }
            }
        };
        let before = bound("before")?;
        let since = bound("since")?;
        let mut out = Vec::new();
        for (i, c) in all.iter().enumerate() {
            // Newest first: "before X" starts after X, "since X" stops at X.
            if before.is_some_and(|b| i <= b) {
                continue;
            }
            if since.is_some_and(|s| i >= s) {
                break;
            }
            if self.keeps(c, &image_id(c)) {
                out.push(c);
                if self.limit > 0 && out.len() == self.limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_matching() {
        assert!(loose_match("web", "web.1.abc"));
        assert!(loose_match("^web", "web.1.abc"));
        assert!(!loose_match("^eb", "web.1.abc"));
        assert!(loose_match("abc$", "web.1.abc"));
        assert!(loose_match("^web.1.abc$", "web.1.abc"));
        assert!(!loose_match("db", "web.1.abc"));
    }

    #[test]
    fn bad_values_are_dockerds_errors() {
        let e = Selection::parse(Some(r#"{"status":{"up":true}}"#), false, None).unwrap_err();
        assert_eq!(
            e.message,
            "invalid filter 'status=up': invalid value for state (up): must be one of created, running, paused, restarting, removing, exited, dead"
        );
        let e = Selection::parse(Some(r#"{"bogus":{"x":true}}"#), false, None).unwrap_err();
        assert_eq!(e.status, 400);
        let s = Selection::parse(Some(r#"{"status":{"exited":true}}"#), false, None).unwrap();
        assert!(s.all);
    }
}
