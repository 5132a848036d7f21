//! Secrets: create, inspect, list, update (labels only), remove. Data never
//! leaves the store through these functions' API views.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::names;
use super::resolve::resolve;
use crate::error::Error;
use crate::error::Result;
use crate::model::api;
use crate::model::new_id;
use crate::model::Kind;
use crate::model::Secret;
use crate::model::Service;
use crate::model::StoreObject;
use crate::store::Store;

/// swarmkit's limit on secret data (500 KiB).
pub const MAX_SIZE: usize = 500 * 1024;

fn data_len(spec: &api::SecretSpec) -> Result<usize> {
    let raw = spec.data.as_deref().unwrap_or("");
    B64.decode(raw)
        .map(|d| d.len())
        .map_err(|e| crate::controlapi::validate::base64_error(&e))
}

/// Checks a secret spec as swarmkit does.
pub fn validate(spec: &api::SecretSpec) -> Result<()> {
    names::validate_object_name(spec.name.as_deref().unwrap_or(""))?;
    // A driver is a secret-provider plugin, and shoal has none: the lookup
    // dockerd makes fails, with its text (and its 500 for the caller's
    // mistake, a 400 here: api-fixtures/KNOWN_DIFFERENCES.md).
    if let Some(d) = spec.driver.as_ref().filter(|d| !d.name.is_empty()) {
        return Err(Error::unknown_bad_input(format!(
            "plugin \"{}\" not found",
            d.name
        )));
    }
    let n = data_len(spec)?;
    if n == 0 || n >= MAX_SIZE {
        return Err(Error::invalid(format!(
            "secret data must be larger than 0 and less than {MAX_SIZE} bytes"
        )));
    }
    Ok(())
}

/// The API view of a secret: never its data.
pub fn view(s: &Secret) -> api::Secret {
    let mut out = s.api.clone();
    if let Some(spec) = out.spec.as_mut() {
        spec.data = None;
    }
    out
}

/// `POST /secrets/create`; returns the new ID.
pub async fn create(store: &Store, mut spec: api::SecretSpec) -> Result<String> {
    validate(&spec)?;
    spec.labels.get_or_insert_with(Default::default);
    let name = spec.name.clone().unwrap_or_default();
    let id = new_id();
    let mut s = Secret::default();
    s.api.id = Some(id.clone());
    s.api.spec = Some(spec);
    store
        .update(|tx| {
            if tx.name_taken::<Secret>(&name, "") {
                return Err(Error::already_exists(format!(
                    "secret {name} already exists"
                )));
            }
            tx.create(s.clone())
        })
        .await?;
    Ok(id)
}

/// `GET /secrets/{id}` (ID, name or prefix).
pub fn get(store: &Store, input: &str) -> Result<Secret> {
    store.view(|tx| resolve::<Secret>(tx, input))
}

/// `GET /secrets`.
pub fn list(store: &Store) -> Vec<Secret> {
    store.view(|tx| tx.list::<Secret>())
}

/// `POST /secrets/{id}/update?version=N`: only labels may change; posting the
/// same data again (as `stack deploy` does) is accepted.
pub async fn update(store: &Store, input: &str, version: u64, spec: api::SecretSpec) -> Result<()> {
    store
        .update(|tx| {
            let mut s = resolve::<Secret>(&tx.base_view(), input)?;
            let cur = s.api.spec.clone().unwrap_or_default();
            let same_data = spec.data.is_none() || spec.data == cur.data;
            if spec.name != cur.name || !same_data || spec.driver != cur.driver {
                return Err(Error::invalid("only updates to Labels are allowed"));
            }
            let mut next = cur;
            next.labels = Some(spec.labels.clone().unwrap_or_default());
            s.api.spec = Some(next);
            // As swarmkit: only labels may change, whatever the version; a
            // stale one is met at the write.
            if s.version() != version {
                return Err(Error::out_of_sequence());
            }
            tx.update(s)
        })
        .await
}

/// Services whose tasks reference the secret `id`.
fn users(tx: &crate::store::ReadTx<'_>, id: &str) -> Vec<String> {
    tx.tables()
        .iter::<Service>()
        .filter(|svc| {
            svc.spec()
                .task_template
                .as_ref()
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.secrets.as_ref())
                .is_some_and(|refs| refs.iter().any(|r| r.secret_id.as_deref() == Some(id)))
        })
        .map(|svc| svc.name().to_string())
        .collect()
}

/// `DELETE /secrets/{id}`: refused while a service uses it.
pub async fn remove(store: &Store, input: &str) -> Result<()> {
    store
        .update(|tx| {
            let base = tx.base_view();
            let s = resolve::<Secret>(&base, input)?;
            let name = s.name().unwrap_or("").to_string();
            let used = users(&base, s.id());
            if !used.is_empty() {
                return Err(Error::invalid(names::in_use_message(
                    "secret", &name, &used,
                )));
            }
            tx.delete::<Secret>(s.id())
        })
        .await
        .map_err(|e| match e.kind() {
            crate::ErrorKind::NotFound => Error::not_found(Kind::Secret, input),
            _ => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, data: &[u8]) -> api::SecretSpec {
        api::SecretSpec {
            name: Some(name.into()),
            data: Some(B64.encode(data)),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn lifecycle_and_limits() {
        let store = Store::in_memory();
        let id = create(&store, spec("s1", b"pw")).await.unwrap();
        let e = create(&store, spec("s1", b"pw")).await.unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = AlreadyExists desc = secret s1 already exists"
        );
        let e = create(&store, spec("big", &vec![b'x'; 600_000]))
            .await
            .unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes"
        );
        assert!(create(&store, spec("empty", b"")).await.is_err());
        let mut plugin = spec("p", b"pw");
        plugin.driver = Some(api::Driver {
            name: "vault".into(),
            ..Default::default()
        });
        let e = create(&store, plugin).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.message()),
            (
                crate::ErrorKind::InvalidArgument,
                "rpc error: code = Unknown desc = plugin \"vault\" not found"
            )
        );
        let s = get(&store, "s1").unwrap();
        assert!(view(&s).spec.unwrap().data.is_none());
        let v = s.version();
        update(&store, &id, v, spec("s1", b"pw")).await.unwrap();
        let v = get(&store, &id).unwrap().version();
        assert!(update(&store, &id, v, spec("s1", b"changed"))
            .await
            .is_err());
        remove(&store, "s1").await.unwrap();
        assert_eq!(
            get(&store, "s1").unwrap_err().message(),
            "secret s1 not found"
        );
    }
}
