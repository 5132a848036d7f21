//! Encrypted overlays on this node: runs the user-space [`tunnel`] while
//! any network with a peer elsewhere is `--opt encrypted`, with the keys
//! and the VNIs the records give.
//!
//! Failing closed: a network is sealed only once the tunnel runs with its
//! VNI, and [`crate::overlay`] programs no peer of an encrypted network
//! that is not sealed (no keys yet, no data-path address, the tunnel
//! failed), so its traffic never leaves the node in the clear.

use std::collections::BTreeSet;

use base64::Engine;
use swarm::exec::NetworkKeys;
use swarm::exec::ServiceRecords;

use crate::error::Result;
use crate::tunnel;
use crate::tunnel::Key;
use crate::tunnel::Keyring;
use crate::tunnel::Tunnel;
use crate::tunnel::TunnelConfig;

/// The tunnel of this node, when it runs.
#[derive(Default)]
pub(crate) struct Encryption {
    inner: tokio::sync::Mutex<Inner>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    tunnel: Option<Tunnel>,
    keys: Option<Keyring>,
    vnis: BTreeSet<u32>,
    /// Whether a previous run's leftovers were cleared.
    swept: bool,
}

/// The VNIs of encrypted networks with a peer on another node.
pub fn wanted_vnis(records: &ServiceRecords) -> BTreeSet<u32> {
    records
        .peers
        .iter()
        .filter(|p| p.encrypted && p.vni > 0 && !p.peers.is_empty())
        .map(|p| p.vni)
        .collect()
}

/// The tunnel's keyring for the records' keys; `None` if they are unusable.
pub fn keyring(keys: &NetworkKeys) -> Option<Keyring> {
    let decoded: Option<Vec<Key>> = keys
        .keys
        .iter()
        .rev()
        .take(tunnel::MAX_KEYS)
        .map(|k| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&k.secret)
                .ok()?;
            let secret: [u8; 32] = raw.try_into().ok()?;
            Some(Key { id: k.id, secret })
        })
        .collect();
    let ring = Keyring {
        keys: decoded?,
        primary: keys.primary,
    };
    ring.validate().ok().map(|()| ring)
}

impl Encryption {
    /// Brings the tunnel in line with `records`; returns the VNIs sealed
    /// from now on. Failures are logged and leave those networks unsealed
    /// (so [`crate::overlay`] keeps them off the wire).
    pub async fn apply(&self, records: &ServiceRecords) -> BTreeSet<u32> {
        let mut inner = self.inner.lock().await;
        let want = wanted_vnis(records);
        if want.is_empty() {
            if let Some(t) = inner.tunnel.take() {
                if let Err(e) = t.stop().await {
                    tracing::warn!(error = %e, "stopping the overlay tunnel");
                }
                tracing::info!("no encrypted overlay left here: tunnel stopped");
            } else if !inner.swept {
                let cfg = TunnelConfig::new(std::net::Ipv4Addr::UNSPECIFIED);
                if let Err(e) = tunnel::remove_leftovers(&cfg).await {
                    tracing::warn!(error = %e, "removing an old overlay tunnel");
                }
            }
            inner.swept = true;
            inner.keys = None;
            inner.vnis.clear();
            return BTreeSet::new();
        }
        match self.run(&mut inner, records, &want).await {
            Ok(()) => inner.vnis.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "encrypted overlays not sealed; their peers wait");
                inner.vnis.clone()
            }
        }
    }

    async fn run(
        &self,
        inner: &mut Inner,
        records: &ServiceRecords,
        want: &BTreeSet<u32>,
    ) -> Result<()> {
        let local = &records.local;
        let (Some(data_addr), Some(keys)) = (
            local.data_addr,
            local.network_keys.as_ref().and_then(keyring),
        ) else {
            tracing::debug!("encrypted overlay without keys or data address yet");
            return Ok(());
        };
        let port = if local.data_port == 0 {
            tunnel::DEFAULT_DATA_PORT
        } else {
            local.data_port
        };
        let cfg = TunnelConfig {
            data_port: port,
            tunnel_port: port.wrapping_add(1),
            ..TunnelConfig::new(data_addr)
        };
        let restart = inner.tunnel.as_ref().is_some_and(|t| *t.config() != cfg);
        if restart {
            if let Some(t) = inner.tunnel.take() {
                t.stop().await?;
            }
            inner.vnis.clear();
        }
        if inner.tunnel.is_none() {
            inner.tunnel = Some(Tunnel::start(cfg, keys.clone()).await?);
            inner.keys = Some(keys.clone());
            tracing::info!("overlay tunnel started for encrypted networks");
        }
        let Some(t) = inner.tunnel.as_ref() else {
            return Ok(());
        };
        if inner.keys.as_ref() != Some(&keys) {
            t.set_keys(keys.clone())?;
            inner.keys = Some(keys);
        }
        if inner.vnis != *want {
            t.set_encrypted_vnis(want.clone()).await?;
            inner.vnis = want.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm::exec::NetworkPeers;
    use swarm::exec::Peer;
    use swarm::model::NetworkKey;

    fn key(id: u32, byte: u8) -> NetworkKey {
        NetworkKey {
            id,
            secret: base64::engine::general_purpose::STANDARD.encode([byte; 32]),
            created: 0,
        }
    }

    #[test]
    fn only_encrypted_networks_with_peers_are_sealed() {
        let peer = Peer {
            address: "10.0.1.5".parse().unwrap(),
            node: "10.99.0.12".parse().unwrap(),
        };
        let net = |vni, encrypted, peers: Vec<Peer>| NetworkPeers {
            network_id: format!("n{vni}"),
            vni,
            peers,
            encrypted,
        };
        let records = ServiceRecords {
            peers: vec![
                net(4097, true, vec![peer]),
                net(4098, true, vec![]),
                net(4099, false, vec![peer]),
            ],
            ..Default::default()
        };
        assert_eq!(wanted_vnis(&records), BTreeSet::from([4097]));
    }

    #[test]
    fn keyrings_take_the_newest_three_and_refuse_bad_keys() {
        let keys = NetworkKeys {
            keys: vec![key(1, 1), key(2, 2), key(3, 3)],
            primary: 2,
        };
        let ring = keyring(&keys).unwrap();
        assert_eq!(ring.primary, 2);
        assert_eq!(ring.keys.len(), 3);
        assert_eq!(ring.get(3).unwrap().secret, [3; 32]);
        let short = NetworkKeys {
            keys: vec![NetworkKey {
                id: 1,
                secret: "c2hvcnQ=".into(),
                created: 0,
            }],
            primary: 1,
        };
        assert!(keyring(&short).is_none());
        let no_primary = NetworkKeys {
            keys: vec![key(1, 1)],
            primary: 9,
        };
        assert!(keyring(&no_primary).is_none());
    }
}
