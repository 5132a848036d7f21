//! Secret and config references in a service spec, checked as dockerd and
//! swarmkit check them: the shape of each reference before anything else is
//! looked at ([`check_shape`]), then that each names a stored object by ID
//! and name ([`check_exist`], inside the write).

use std::collections::HashMap;

use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;
use crate::model::Config;
use crate::model::Secret;
use crate::store::tables::Table;
use crate::store::Tx;

fn container(spec: &api::ServiceSpec) -> Option<&api::TaskSpecContainerSpec> {
    spec.task_template.as_ref()?.container_spec.as_ref()
}

fn empty(s: &Option<String>) -> bool {
    s.as_deref().unwrap_or("").is_empty()
}

/// dockerd's own conversion of config targets, before swarmkit sees the
/// spec: exactly one of `File` and `Runtime`.
pub fn check_config_targets(spec: &api::ServiceSpec) -> Result<()> {
    for c in container(spec)
        .and_then(|c| c.configs.as_ref())
        .into_iter()
        .flatten()
    {
        let text = match (c.file.is_some(), c.runtime.is_some()) {
            (false, false) => "invalid Config: either File or Runtime should be set",
            (true, true) => "invalid Config: cannot specify both File and Runtime",
            _ => continue,
        };
        return Err(Error::new(ErrorKind::InvalidArgument, text));
    }
    Ok(())
}

/// swarmkit's checks of the references themselves: an ID and a name each, a
/// target, a file name, no two files on one target, and a credential spec
/// config that is among the runtime config references.
pub fn check_shape(spec: &api::ServiceSpec) -> Result<()> {
    let Some(cs) = container(spec) else {
        return Ok(());
    };
    let mut targets: HashMap<&str, &str> = HashMap::new();
    for s in cs.secrets.iter().flatten() {
        if empty(&s.secret_id) || empty(&s.secret_name) {
            return Err(Error::invalid("malformed secret reference"));
        }
        let name = s.secret_name.as_deref().unwrap_or("");
        let Some(file) = s.file.as_ref() else {
            return Err(Error::invalid(
                "malformed secret reference, no target provided",
            ));
        };
        let target = file.name.as_deref().unwrap_or("");
        if target.is_empty() {
            return Err(Error::invalid(
                "malformed file secret reference, invalid target file name provided",
            ));
        }
        if let Some(prev) = targets.insert(target, name) {
            return Err(Error::invalid(format!(
                "secret references '{prev}' and '{name}' have a conflicting target: '{target}'"
            )));
        }
    }
    let cred_config = cs
        .privileges
        .as_ref()
        .and_then(|p| p.credential_spec.as_ref())
        .and_then(|c| c.config.as_deref())
        .unwrap_or("");
    let mut cred_config_found = false;
    let mut targets: HashMap<&str, &str> = HashMap::new();
    for c in cs.configs.iter().flatten() {
        if empty(&c.config_id) || empty(&c.config_name) {
            return Err(Error::invalid("malformed config reference"));
        }
        let name = c.config_name.as_deref().unwrap_or("");
        if c.file.is_none() && c.runtime.is_none() {
            return Err(Error::invalid(
                "malformed config reference, no target provided",
            ));
        }
        if let Some(file) = c.file.as_ref() {
            let target = file.name.as_deref().unwrap_or("");
            if target.is_empty() {
                return Err(Error::invalid(
                    "malformed file config reference, invalid target file name provided",
                ));
            }
            if let Some(prev) = targets.insert(target, name) {
                return Err(Error::invalid(format!(
                    "config references '{prev}' and '{name}' have a conflicting target: '{target}'"
                )));
            }
        }
        if c.runtime.is_some() && c.config_id.as_deref() == Some(cred_config) {
            cred_config_found = true;
        }
    }
    if !cred_config.is_empty() && !cred_config_found {
        return Err(Error::invalid(format!(
            "CredentialSpec references config '{cred_config}', but that config isn't in config references with RuntimeTarget"
        )));
    }
    Ok(())
}

/// The names of the references whose ID is not stored, or is stored under
/// another name, in the order given.
fn missing<'a, T: Table>(
    tx: &Tx<'_>,
    refs: impl Iterator<Item = (&'a Option<String>, &'a Option<String>)>,
) -> Vec<&'a str> {
    let view = tx.base_view();
    let tables = view.tables();
    refs.filter(|(id, name)| {
        let found = tables.get::<T>(id.as_deref().unwrap_or(""));
        found.is_none_or(|o| o.name().unwrap_or("") != name.as_deref().unwrap_or(""))
    })
    .map(|(_, name)| name.as_deref().unwrap_or(""))
    .collect()
}

fn not_found(kind: &str, names: &[&str]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let plural = if names.len() == 1 { "" } else { "s" };
    Err(Error::invalid(format!(
        "{kind}{plural} not found: {}",
        names.join(", ")
    )))
}

/// Every referenced secret and config is stored, by its ID, under the name
/// the reference gives (create and update, inside the write).
pub fn check_exist(tx: &Tx<'_>, spec: &api::ServiceSpec) -> Result<()> {
    let Some(cs) = container(spec) else {
        return Ok(());
    };
    let secrets = cs.secrets.iter().flatten();
    not_found(
        "secret",
        &missing::<Secret>(tx, secrets.map(|s| (&s.secret_id, &s.secret_name))),
    )?;
    let configs = cs.configs.iter().flatten();
    not_found(
        "config",
        &missing::<Config>(tx, configs.map(|c| (&c.config_id, &c.config_name))),
    )
}

#[cfg(test)]
#[path = "refs_tests.rs"]
mod tests;
