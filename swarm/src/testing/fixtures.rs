//! Small objects and readers that distributed tests share. Secrets are the
//! simplest object with a unique name and user-editable labels, so most
//! tests write them through the real `controlapi` path.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::controlapi;
use crate::error::Result;
use crate::model::api;
use crate::model::Secret;
use crate::store::Store;

/// A valid secret spec named `name` (the data is the name).
pub fn secret_spec(name: &str) -> api::SecretSpec {
    api::SecretSpec {
        name: Some(name.into()),
        data: Some(B64.encode(name.as_bytes())),
        ..Default::default()
    }
}

/// Creates secret `name` through `store` as `docker secret create` would
/// (`controlapi::secret::create`); returns its ID.
pub async fn create_secret(store: &Store, name: &str) -> Result<String> {
    controlapi::secret::create(store, secret_spec(name)).await
}

/// The names of every secret `store` has applied.
pub fn secret_names(store: &Store) -> BTreeSet<String> {
    store.view(|tx| {
        tx.list::<Secret>()
            .into_iter()
            .filter_map(|s| s.api.spec.and_then(|s| s.name))
            .collect()
    })
}
