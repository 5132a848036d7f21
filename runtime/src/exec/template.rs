//! The Go-template placeholders dockerd expands in a task's hostname, env
//! and mount sources (`{{.Service.Name}}`, `{{.Task.Slot}}`, ...).
//!
//! Hand-written: only field references are allowed there, so a full Go
//! template engine would add a dependency for nothing. Unknown placeholders
//! are left as they are.

/// The values placeholders refer to.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// `.Service.ID`
    pub service_id: String,
    /// `.Service.Name`
    pub service_name: String,
    /// `.Service.Labels` (printed as Go prints a map).
    pub service_labels: std::collections::BTreeMap<String, String>,
    /// `.Node.ID`
    pub node_id: String,
    /// `.Node.Hostname`
    pub node_hostname: String,
    /// `.Task.ID`
    pub task_id: String,
    /// `.Task.Name`
    pub task_name: String,
    /// `.Task.Slot`
    pub task_slot: String,
}

impl Fields {
    fn lookup(&self, path: &str) -> Option<String> {
        Some(match path {
            ".Service.ID" => self.service_id.clone(),
            ".Service.Name" => self.service_name.clone(),
            ".Service.Labels" => {
                let inner: Vec<String> = self
                    .service_labels
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect();
                format!("map[{}]", inner.join(" "))
            }
            ".Node.ID" => self.node_id.clone(),
            ".Node.Hostname" => self.node_hostname.clone(),
            ".Node.Platform.OS" => "linux".into(),
            ".Node.Platform.Architecture" => std::env::consts::ARCH.into(),
            ".Task.ID" => self.task_id.clone(),
            ".Task.Name" => self.task_name.clone(),
            ".Task.Slot" => self.task_slot.clone(),
            _ => return None,
        })
    }
}

/// `text` with every known `{{ .Path }}` replaced.
pub fn expand(text: &str, fields: &Fields) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = after[..close].trim();
        match fields.lookup(inner) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_fields_expand_and_others_stay() {
        let f = Fields {
            service_name: "web".into(),
            task_slot: "2".into(),
            node_hostname: "n1".into(),
            ..Default::default()
        };
        assert_eq!(
            expand("{{.Service.Name}}-{{ .Task.Slot }}@{{.Node.Hostname}}", &f),
            "web-2@n1"
        );
        assert_eq!(expand("{{.Nope}} {{", &f), "{{.Nope}} {{");
        assert_eq!(expand("plain", &f), "plain");
    }
}
