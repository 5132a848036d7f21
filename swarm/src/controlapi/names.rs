//! Name rules shared by secrets and configs (swarmkit `validateAnnotations`
//! for those kinds).

use crate::error::Error;
use crate::error::Result;

/// Checks a secret or config name: at most 64 of `[a-zA-Z0-9-_.]`, starting
/// and ending with an alphanumeric.
pub fn validate_object_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]",
        ))
    }
}

/// The names of services using an object, in dockerd's in-use message form.
pub fn in_use_message(kind: &str, name: &str, services: &[String]) -> String {
    if services.len() == 1 {
        format!(
            "{kind} '{name}' is in use by the following service: {}",
            services[0]
        )
    } else {
        format!(
            "{kind} '{name}' is in use by the following services: {}",
            services.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_object_name("app_cfg.v1").is_ok());
        for bad in ["", "bad name", "-x", "x-", &"a".repeat(65)] {
            assert!(validate_object_name(bad).is_err(), "{bad}");
        }
    }
}
