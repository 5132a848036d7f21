//! Placement constraints (`node.labels.zone == a`): parsing and matching.

use crate::model::api;
use crate::model::Node;

/// One parsed constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// The key, as written (`node.hostname`, `node.labels.zone`, ...).
    pub key: String,
    /// `==` when true, `!=` when false.
    pub equal: bool,
    /// The expected value.
    pub value: String,
}

/// Parses constraint expressions; the error text is swarmkit's.
pub fn parse(exprs: &[String]) -> Result<Vec<Constraint>, String> {
    exprs
        .iter()
        .map(|c| {
            let (i, equal) = match (c.find("=="), c.find("!=")) {
                (Some(i), _) => (i, true),
                (None, Some(i)) => (i, false),
                _ => return Err("constraint expected one operator from ==, !=".to_string()),
            };
            let key = c[..i].trim();
            let value = c[i + 2..].trim();
            if key.is_empty() || value.is_empty() || value.contains("==") || value.contains("!=") {
                return Err("constraint expected one operator from ==, !=".to_string());
            }
            Ok(Constraint {
                key: key.to_string(),
                equal,
                value: value.to_string(),
            })
        })
        .collect()
}

/// The node's value for a constraint key, if the node has one.
fn node_value(n: &Node, key: &str) -> Option<String> {
    let desc = n.api.description.as_ref();
    let lower = key.to_ascii_lowercase();
    match lower.as_str() {
        "node.id" => n.api.id.clone(),
        "node.hostname" => desc.and_then(|d| d.hostname.clone()),
        "node.role" => n
            .api
            .spec
            .as_ref()
            .and_then(|s| s.role)
            .map(|r| r.to_string()),
        "node.platform.os" => desc
            .and_then(|d| d.platform.as_ref())
            .and_then(|p| p.os.clone()),
        "node.platform.arch" => desc
            .and_then(|d| d.platform.as_ref())
            .and_then(|p| p.architecture.clone()),
        _ => {
            if let Some(l) = key.strip_prefix("node.labels.") {
                n.api.spec.as_ref()?.labels.as_ref()?.get(l).cloned()
            } else if let Some(l) = key.strip_prefix("engine.labels.") {
                desc?.engine.as_ref()?.labels.as_ref()?.get(l).cloned()
            } else {
                None
            }
        }
    }
}

/// Whether `n` satisfies every constraint. Values compare case-insensitively
/// for ids, hostnames, roles and platforms, exactly for labels (as swarmkit).
pub fn satisfied(n: &Node, cs: &[Constraint]) -> bool {
    cs.iter().all(|c| {
        let label = c.key.starts_with("node.labels.") || c.key.starts_with("engine.labels.");
        let eq = |v: &str| {
            if label {
                v == c.value
            } else {
                v.eq_ignore_ascii_case(&c.value)
            }
        };
        match node_value(n, &c.key) {
            Some(v) => eq(&v) == c.equal,
            None => !c.equal,
        }
    })
}

/// The constraints of a task spec (unparseable ones never match).
pub fn of_spec(spec: Option<&api::TaskSpec>) -> Result<Vec<Constraint>, String> {
    let list = spec
        .and_then(|s| s.placement.as_ref())
        .and_then(|p| p.constraints.clone())
        .unwrap_or_default();
    parse(&list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut n = Node::default();
        n.api.id = Some("n1".into());
        n.api.spec = Some(api::NodeSpec {
            role: Some(api::NodeSpecRoleEnum::MANAGER),
            labels: Some([("zone".to_string(), "a".to_string())].into()),
            ..Default::default()
        });
        n.api.description = Some(api::NodeDescription {
            hostname: Some("Host1".into()),
            platform: Some(api::Platform {
                os: Some("linux".into()),
                architecture: Some("x86_64".into()),
            }),
            ..Default::default()
        });
        n
    }

    #[test]
    fn matches_like_swarmkit() {
        let n = node();
        let ok = |e: &str| satisfied(&n, &parse(&[e.to_string()]).unwrap());
        assert!(ok("node.role == manager"));
        assert!(ok("node.role==MANAGER"));
        assert!(!ok("node.role != manager"));
        assert!(ok("node.hostname == host1"));
        assert!(ok("node.labels.zone == a"));
        assert!(!ok("node.labels.zone == A"));
        assert!(ok("node.labels.missing != x"));
        assert!(!ok("node.labels.missing == x"));
        assert!(ok("node.platform.os == linux"));
        assert!(ok("node.id == n1"));
        assert!(parse(&["a=b".to_string()]).is_err());
    }
}
