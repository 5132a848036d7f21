//! Finding a container by what a client typed, in dockerd's order.

use super::ContainerInfo;
use super::Error;
use super::Result;

/// The container `input` names: a full ID, then an exact name (with or
/// without the leading `/`), then a unique ID prefix. Several IDs sharing
/// the prefix is dockerd's "multiple IDs" error; none is "No such
/// container".
pub fn resolve<'a>(all: &'a [ContainerInfo], input: &str) -> Result<&'a ContainerInfo> {
    if input.is_empty() {
        return Err(Error::NoSuchContainer(String::new()));
    }
    if let Some(c) = all.iter().find(|c| c.id == input) {
        return Ok(c);
    }
    let name = input.strip_prefix('/').unwrap_or(input);
    if let Some(c) = all.iter().find(|c| c.name == name) {
        return Ok(c);
    }
    let mut prefixed = all.iter().filter(|c| c.id.starts_with(input));
    match (prefixed.next(), prefixed.next()) {
        (Some(c), None) => Ok(c),
        (Some(_), Some(_)) => Err(Error::AmbiguousPrefix(input.to_string())),
        (None, _) => Err(Error::NoSuchContainer(input.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::view::spec::SpecView;
    use crate::view::state::RunState;
    use crate::view::state::Status;

    fn c(id: &str, name: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: name.into(),
            image: String::new(),
            labels: HashMap::new(),
            created: None,
            state: RunState {
                status: Status::Running,
                pid: 1,
                exit_code: 0,
                started_at: None,
                finished_at: None,
            },
            spec: SpecView::default(),
            dir: PathBuf::new(),
            log_path: PathBuf::new(),
            standalone: false,
        }
    }

    #[test]
    fn id_then_name_then_prefix() {
        let all = vec![
            c("abc111", "web.1.x"),
            c("abc222", "abc111x"),
            c("def333", "abc"),
        ];
        assert_eq!(resolve(&all, "abc111").unwrap().id, "abc111");
        assert_eq!(resolve(&all, "/web.1.x").unwrap().id, "abc111");
        assert_eq!(resolve(&all, "web.1.x").unwrap().id, "abc111");
        // A name wins over an ID prefix.
        assert_eq!(resolve(&all, "abc").unwrap().id, "def333");
        assert_eq!(resolve(&all, "abc2").unwrap().id, "abc222");
        assert_eq!(
            resolve(&all, "ab").unwrap_err().to_string(),
            "multiple IDs found with provided prefix: ab"
        );
        assert_eq!(
            resolve(&all, "zzz").unwrap_err().to_string(),
            "No such container: zzz"
        );
    }
}
