//! The swarm (cluster) object: defaults, inspect, update, join tokens.

use crate::ca;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;
use crate::model::Cluster;
use crate::model::StoreObject;
use crate::store::Store;

/// 90 days, swarmkit's default node certificate expiry.
pub const DEFAULT_CERT_EXPIRY_NS: i64 = 90 * 24 * 3600 * 1_000_000_000;
/// 5 s, swarmkit's default dispatcher heartbeat.
pub const DEFAULT_HEARTBEAT_NS: i64 = 5_000_000_000;
const MIN_CERT_EXPIRY_NS: i64 = 3600 * 1_000_000_000;

/// Fills the zero values of a swarm spec with swarmkit's defaults, as
/// `swarm init` and `swarm update` do ("zeros mean defaults").
pub fn with_defaults(mut spec: api::SwarmSpec) -> api::SwarmSpec {
    if spec.name.as_deref().unwrap_or("").is_empty() {
        spec.name = Some("default".into());
    }
    spec.labels.get_or_insert_with(Default::default);
    let o = spec.orchestration.get_or_insert_with(Default::default);
    if o.task_history_retention_limit.is_none() {
        o.task_history_retention_limit = Some(5);
    }
    let r = spec.raft.get_or_insert_with(Default::default);
    if r.snapshot_interval.unwrap_or(0) == 0 {
        r.snapshot_interval = Some(10_000);
    }
    r.keep_old_snapshots.get_or_insert(0);
    if r.log_entries_for_slow_followers.unwrap_or(0) == 0 {
        r.log_entries_for_slow_followers = Some(500);
    }
    if r.election_tick.unwrap_or(0) == 0 {
        r.election_tick = Some(10);
    }
    if r.heartbeat_tick.unwrap_or(0) == 0 {
        r.heartbeat_tick = Some(1);
    }
    let d = spec.dispatcher.get_or_insert_with(Default::default);
    if d.heartbeat_period.unwrap_or(0) == 0 {
        d.heartbeat_period = Some(DEFAULT_HEARTBEAT_NS);
    }
    let c = spec.ca_config.get_or_insert_with(Default::default);
    if c.node_cert_expiry.unwrap_or(0) == 0 {
        c.node_cert_expiry = Some(DEFAULT_CERT_EXPIRY_NS);
    }
    spec.task_defaults.get_or_insert_with(Default::default);
    spec.encryption_config
        .get_or_insert_with(Default::default)
        .auto_lock_managers
        .get_or_insert(false);
    spec
}

/// The node certificate lifetime the spec asks for.
pub fn cert_expiry(spec: &api::SwarmSpec) -> std::time::Duration {
    let ns = spec
        .ca_config
        .as_ref()
        .and_then(|c| c.node_cert_expiry)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CERT_EXPIRY_NS);
    std::time::Duration::from_nanos(ns as u64)
}

/// Entries between raft snapshots the cluster asks for (`--snapshot-interval`).
pub fn snapshot_interval(store: &Store) -> u64 {
    store
        .view(|v| v.cluster())
        .and_then(|c| c.api.spec?.raft?.snapshot_interval)
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

/// The agents' heartbeat period the cluster asks for.
pub fn heartbeat_period(store: &Store) -> std::time::Duration {
    let ns = store
        .view(|v| v.cluster())
        .and_then(|c| c.api.spec?.dispatcher?.heartbeat_period)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_HEARTBEAT_NS);
    std::time::Duration::from_nanos(ns as u64)
}

/// Checks a swarm spec as swarmkit's controlapi does.
pub fn validate(spec: &api::SwarmSpec) -> Result<()> {
    if let Some(exp) = spec.ca_config.as_ref().and_then(|c| c.node_cert_expiry) {
        if exp < MIN_CERT_EXPIRY_NS {
            return Err(Error::invalid("minimum certificate expiry time is: 1h0m0s"));
        }
    }
    if let Some(limit) = spec
        .orchestration
        .as_ref()
        .and_then(|o| o.task_history_retention_limit)
    {
        if limit < 0 {
            return Err(Error::invalid(
                "TaskHistoryRetentionLimit must be non-negative",
            ));
        }
    }
    Ok(())
}

/// Which join tokens and keys to rotate in an update.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rotate {
    /// New worker token.
    pub worker_token: bool,
    /// New manager token.
    pub manager_token: bool,
    /// New manager unlock key.
    pub unlock_key: bool,
}

/// The outcome of a swarm update that the node must act on.
#[derive(Debug, Clone)]
pub struct UpdateOutcome {
    /// The unlock key in force after the update (`None`: autolock off).
    pub unlock_key: Option<String>,
    /// Whether the key changed (the DEK must be re-wrapped).
    pub key_changed: bool,
}

/// The cluster object; errors as dockerd when there is none.
pub fn get(store: &Store) -> Result<Cluster> {
    store.view(|tx| tx.cluster()).ok_or_else(Error::not_manager)
}

/// `POST /swarm/update?version=N`: replaces the spec and rotates what is asked.
pub async fn update(
    store: &Store,
    version: u64,
    spec: api::SwarmSpec,
    rotate: Rotate,
) -> Result<UpdateOutcome> {
    // The request replaces the whole spec and dockerd stores its zeros as
    // given (they mean "default" where swarmkit reads them); only the name
    // keeps its default.
    let mut spec = spec;
    match spec.name.as_deref().unwrap_or("") {
        "" => spec.name = Some("default".into()),
        "default" => {}
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "swarm spec must be named \"default\"",
            ))
        }
    }
    // Go writes these sections (and the ticks, the history limit and the
    // snapshots kept) even when they are zero.
    spec.labels.get_or_insert_with(Default::default);
    spec.orchestration
        .get_or_insert_with(Default::default)
        .task_history_retention_limit
        .get_or_insert(0);
    let r = spec.raft.get_or_insert_with(Default::default);
    r.election_tick.get_or_insert(0);
    r.heartbeat_tick.get_or_insert(0);
    r.keep_old_snapshots.get_or_insert(0);
    spec.dispatcher.get_or_insert_with(Default::default);
    spec.ca_config.get_or_insert_with(Default::default);
    spec.task_defaults.get_or_insert_with(Default::default);
    spec.encryption_config
        .get_or_insert_with(Default::default)
        .auto_lock_managers
        .get_or_insert(false);
    validate(&spec)?;
    // `docker swarm ca --rotate` bumps ForceRotate, or gives a root of its
    // own; neither the given key nor the certificate is stored in the spec.
    let ca = spec.ca_config.get_or_insert_with(Default::default);
    let signing = match (ca.signing_ca_cert.take(), ca.signing_ca_key.take()) {
        (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => Some((cert, key)),
        _ => None,
    };
    let force_rotate = ca.force_rotate.unwrap_or(0);
    // Made once, outside the transaction (which may run more than once).
    let generated = match signing {
        Some(given) => Some(given),
        None => {
            let current = get(store)?;
            let was = current
                .api
                .spec
                .and_then(|s| s.ca_config)
                .and_then(|c| c.force_rotate)
                .unwrap_or(0);
            if force_rotate > was {
                let r = ca::rotation::new_root()?;
                Some((r.cert_pem, r.key_pem))
            } else {
                None
            }
        }
    };
    store
        .update(|tx| {
            let mut c = tx.cluster().ok_or_else(Error::not_manager)?;
            if let Some((cert, key)) = &generated {
                ca::rotation::start(&mut c, cert, key)?;
            }
            let autolock = spec
                .encryption_config
                .as_ref()
                .and_then(|e| e.auto_lock_managers)
                .unwrap_or(false);
            let before = c.unlock_key.clone();
            c.unlock_key = match (autolock, &c.unlock_key) {
                (false, _) => None,
                (true, Some(k)) if !rotate.unlock_key => Some(k.clone()),
                (true, _) => Some(crate::raft::encryption::new_unlock_key()),
            };
            let der = c.root_ca_cert.clone().into_bytes();
            let tokens = c.api.join_tokens.get_or_insert_with(Default::default);
            if rotate.worker_token {
                tokens.worker = Some(ca::tokens::generate(&der));
            }
            if rotate.manager_token {
                tokens.manager = Some(ca::tokens::generate(&der));
            }
            c.api.spec = Some(spec.clone());
            let outcome = UpdateOutcome {
                key_changed: before != c.unlock_key,
                unlock_key: c.unlock_key.clone(),
            };
            // As swarmkit: the spec and the CA change are judged first; a
            // stale version is met at the write.
            if c.version() != version {
                return Err(Error::out_of_sequence());
            }
            tx.update(c)?;
            Ok(outcome)
        })
        .await
}

/// DER bytes of the first certificate in a PEM string.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    B64.decode(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_zeros_only() {
        let spec = with_defaults(api::SwarmSpec {
            orchestration: Some(api::SwarmSpecOrchestration {
                task_history_retention_limit: Some(3),
            }),
            ..Default::default()
        });
        assert_eq!(spec.name.as_deref(), Some("default"));
        assert_eq!(
            spec.orchestration.unwrap().task_history_retention_limit,
            Some(3)
        );
        assert_eq!(spec.raft.unwrap().snapshot_interval, Some(10_000));
        assert_eq!(
            spec.ca_config.unwrap().node_cert_expiry,
            Some(DEFAULT_CERT_EXPIRY_NS)
        );
    }

    #[test]
    fn short_cert_expiry_is_refused() {
        let spec = with_defaults(api::SwarmSpec {
            ca_config: Some(api::SwarmSpecCaConfig {
                node_cert_expiry: Some(60_000_000_000),
                ..Default::default()
            }),
            ..Default::default()
        });
        let e = validate(&spec).unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s"
        );
    }
}
