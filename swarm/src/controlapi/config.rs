//! Configs: create, inspect, list, update (labels only), remove.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::names;
use super::resolve::resolve;
use crate::error::Error;
use crate::error::Result;
use crate::model::api;
use crate::model::new_id;
use crate::model::Config;
use crate::model::Kind;
use crate::model::Service;
use crate::model::StoreObject;
use crate::store::Store;

/// swarmkit's limit on config data (1000 KiB).
pub const MAX_SIZE: usize = 1000 * 1024;

fn data_len(spec: &api::ConfigSpec) -> Result<usize> {
    let raw = spec.data.as_deref().unwrap_or("");
    B64.decode(raw)
        .map(|d| d.len())
        .map_err(|e| crate::controlapi::validate::base64_error(&e))
}

/// Checks a config spec as swarmkit does.
pub fn validate(spec: &api::ConfigSpec) -> Result<()> {
    names::validate_object_name(spec.name.as_deref().unwrap_or(""))?;
    let n = data_len(spec)?;
    if n == 0 || n >= MAX_SIZE {
        return Err(Error::invalid(format!(
            "config data must be larger than 0 and less than {MAX_SIZE} bytes"
        )));
    }
    Ok(())
}

/// The API view of a config (data included, as dockerd shows it).
pub fn view(c: &Config) -> api::Config {
    c.api.clone()
}

/// `POST /configs/create`; returns the new ID.
pub async fn create(store: &Store, mut spec: api::ConfigSpec) -> Result<String> {
    validate(&spec)?;
    spec.labels.get_or_insert_with(Default::default);
    let name = spec.name.clone().unwrap_or_default();
    let id = new_id();
    let mut s = Config::default();
    s.api.id = Some(id.clone());
    s.api.spec = Some(spec);
    store
        .update(|tx| {
            if tx.name_taken::<Config>(&name, "") {
                return Err(Error::already_exists(format!(
                    "config {name} already exists"
                )));
            }
            tx.create(s.clone())
        })
        .await?;
    Ok(id)
}

/// `GET /configs/{id}` (ID, name or prefix).
pub fn get(store: &Store, input: &str) -> Result<Config> {
    store.view(|tx| resolve::<Config>(tx, input))
}

/// `GET /configs`.
pub fn list(store: &Store) -> Vec<Config> {
    store.view(|tx| tx.list::<Config>())
}

/// `POST /configs/{id}/update?version=N`: only labels may change; posting the
/// same data again (as `stack deploy` does) is accepted.
pub async fn update(store: &Store, input: &str, version: u64, spec: api::ConfigSpec) -> Result<()> {
    store
        .update(|tx| {
            let mut s = resolve::<Config>(&tx.base_view(), input)?;
            let cur = s.api.spec.clone().unwrap_or_default();
            let same_data = spec.data.is_none() || spec.data == cur.data;
            if spec.name != cur.name || !same_data || spec.templating != cur.templating {
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

/// Services whose tasks reference the config `id`.
fn users(tx: &crate::store::ReadTx<'_>, id: &str) -> Vec<String> {
    tx.tables()
        .iter::<Service>()
        .filter(|svc| {
            svc.spec()
                .task_template
                .as_ref()
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.configs.as_ref())
                .is_some_and(|refs| refs.iter().any(|r| r.config_id.as_deref() == Some(id)))
        })
        .map(|svc| svc.name().to_string())
        .collect()
}

/// `DELETE /configs/{id}`: refused while a service uses it.
pub async fn remove(store: &Store, input: &str) -> Result<()> {
    store
        .update(|tx| {
            let base = tx.base_view();
            let s = resolve::<Config>(&base, input)?;
            let name = s.name().unwrap_or("").to_string();
            let used = users(&base, s.id());
            if !used.is_empty() {
                return Err(Error::invalid(names::in_use_message(
                    "config", &name, &used,
                )));
            }
            tx.delete::<Config>(s.id())
        })
        .await
        .map_err(|e| match e.kind() {
            crate::ErrorKind::NotFound => Error::not_found(Kind::Config, input),
            _ => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, data: &[u8]) -> api::ConfigSpec {
        api::ConfigSpec {
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
            "rpc error: code = AlreadyExists desc = config s1 already exists"
        );
        create(&store, spec("mid", &vec![b'x'; 600_000]))
            .await
            .unwrap();
        let e = create(&store, spec("big", &vec![b'x'; 1_100_000]))
            .await
            .unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = InvalidArgument desc = config data must be larger than 0 and less than 1024000 bytes"
        );
        assert!(create(&store, spec("empty", b"")).await.is_err());
        let s = get(&store, "s1").unwrap();
        assert!(view(&s).spec.unwrap().data.is_some());
        let v = s.version();
        update(&store, &id, v, spec("s1", b"pw")).await.unwrap();
        let v = get(&store, &id).unwrap().version();
        assert!(update(&store, &id, v, spec("s1", b"changed"))
            .await
            .is_err());
        remove(&store, "s1").await.unwrap();
        assert_eq!(
            get(&store, "s1").unwrap_err().message(),
            "config s1 not found"
        );
    }
}
