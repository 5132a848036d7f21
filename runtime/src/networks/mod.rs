//! Node-local networks: what `docker network create` with the bridge
//! driver makes for standalone containers, as dockerd keeps it.
//!
//! Each network is one JSON file, `<data-root>/networks/<id>.json`,
//! written (synced, renamed) before the create is answered and deleted
//! after its bridge is gone, so the networks outlive shoald: at the next
//! start every recorded network is made again on the node (see
//! `standalone::networks`). This module keeps the records and decides what
//! a create request makes (name, addresses, bridge); the node's network
//! driver makes them real and gives containers their addresses.

mod error;
pub mod pool;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;
use serde::Serialize;
use swarm::exec::LocalNetwork;
use swarm::model::api;

pub use self::error::Error;
pub use self::error::Result;
use self::pool::InUse;

/// The only driver of node-local networks here.
pub const BRIDGE_DRIVER: &str = "bridge";
/// The option naming the bridge (dockerd's).
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";
/// The option setting the MTU (dockerd's).
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// dockerd's predefined networks: no other network may take their names.
pub const PREDEFINED: &[&str] = &["bridge", "host", "none"];

/// One node-local network as dockerd's `network inspect` describes it
/// (its containers aside), and what its bridge is made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was made (RFC 3339 with nanoseconds).
    pub created: String,
    /// `IPAM` as shown: the driver, the request's options, and the
    /// request's config (or the chosen subnet and gateway).
    pub ipam: api::Ipam,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable` (shown; every local network takes containers).
    pub attachable: bool,
    /// The driver options as given.
    pub options: HashMap<String, String>,
    /// The labels as given.
    pub labels: HashMap<String, String>,
    /// The subnet in use (CIDR).
    pub subnet: String,
    /// The bridge's address.
    pub gateway: String,
    /// Where containers' addresses come from (CIDR); empty: the subnet.
    pub ip_range: String,
    /// Whether the subnet was asked for: only then may a container ask for
    /// its address (`--ip`).
    pub user_subnet: bool,
    /// The Linux bridge's name.
    pub bridge: String,
    /// The MTU of the bridge and its ports.
    pub mtu: u32,
}

impl Network {
    /// What the node's network driver makes of it.
    pub fn spec(&self) -> LocalNetwork {
        LocalNetwork {
            id: self.id.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet.clone(),
            gateway: self.gateway.clone(),
            ip_range: self.ip_range.clone(),
            internal: self.internal,
            mtu: self.mtu,
        }
    }

    /// The subnet, parsed.
    pub fn subnet_net(&self) -> Option<ipnet::Ipv4Net> {
        self.subnet.parse().ok()
    }
}

/// The node's local networks, by ID, as recorded under the data root.
#[derive(Debug)]
pub struct LocalNetworks {
    dir: PathBuf,
    all: Mutex<BTreeMap<String, Network>>,
}

impl LocalNetworks {
    /// The networks recorded in `dir` (made if missing). A record that
    /// does not read is skipped with a warning: the other networks still
    /// come back.
    pub fn open(dir: PathBuf) -> Result<LocalNetworks> {
        std::fs::create_dir_all(&dir).map_err(Error::io("create the networks directory"))?;
        let mut all = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(Error::io("list the networks directory"))?;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|raw| serde_json::from_slice::<Network>(&raw).map_err(|e| e.to_string()));
            match read {
                Ok(n) => {
                    all.insert(n.id.clone(), n);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping a network record")
                }
            }
        }
        Ok(LocalNetworks {
            dir,
            all: Mutex::new(all),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Network>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every network, oldest first.
    pub fn list(&self) -> Vec<Network> {
        let mut all: Vec<Network> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        all
    }

    /// The network `input` names exactly: its full ID or its name.
    pub fn get_exact(&self, input: &str) -> Option<Network> {
        let all = self.lock();
        all.get(input)
            .or_else(|| all.values().find(|n| n.name == input))
            .cloned()
    }

    /// The network whose ID starts with `input` (a unique prefix).
    pub fn get_by_prefix(&self, input: &str) -> Option<Network> {
        if input.is_empty() {
            return None;
        }
        let all = self.lock();
        let mut found = all.values().filter(|n| n.id.starts_with(input));
        match (found.next(), found.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }

    /// [`LocalNetworks::get_exact`], then [`LocalNetworks::get_by_prefix`].
    pub fn get(&self, input: &str) -> Option<Network> {
        self.get_exact(input).or_else(|| self.get_by_prefix(input))
    }

    /// Decides the network a create request makes: its ID, addresses and
    /// bridge, checked against the other networks and `in_use`. Nothing
    /// is recorded yet (see [`LocalNetworks::insert`]).
    pub fn plan(
        &self,
        req: &api::NetworkCreateRequest,
        in_use: &InUse,
        now: time::OffsetDateTime,
    ) -> Result<Network> {
        let others = self.list();
        if PREDEFINED.contains(&req.name.as_str()) {
            return Err(Error::Predefined(req.name.clone()));
        }
        if others.iter().any(|n| n.name == req.name) {
            return Err(Error::NameTaken(req.name.clone()));
        }
        if req.enable_ipv6.unwrap_or(false) {
            return Err(Error::Unsupported(
                "IPv6 networks are not supported by this daemon".into(),
            ));
        }
        let mut in_use = in_use.clone();
        in_use
            .networks
            .extend(others.iter().filter_map(Network::subnet_net));
        let addr = pool::addressing(req.ipam.as_ref(), &in_use)?;
        let id = crate::exec::ids::random_hex(32);
        let options = req.options.clone().unwrap_or_default();
        let bridge = match options.get(BRIDGE_NAME_OPTION).filter(|b| !b.is_empty()) {
            Some(b) => b.clone(),
            None => format!("br-{}", &id[..12]),
        };
        if let Some(other) = others.iter().find(|n| n.bridge == bridge) {
            return Err(Error::BridgeNameTaken {
                id,
                bridge,
                other: other.id.clone(),
            });
        }
        let mtu = match options.get(MTU_OPTION) {
            None => 0,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| Error::InvalidOption {
                    option: MTU_OPTION.into(),
                    value: v.clone(),
                })?,
        };
        let ipam = api::Ipam {
            driver: Some(
                req.ipam
                    .as_ref()
                    .and_then(|i| i.driver.clone())
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "default".into()),
            ),
            config: Some(addr.shown.clone()),
            options: req.ipam.as_ref().and_then(|i| i.options.clone()),
        };
        Ok(Network {
            id,
            name: req.name.clone(),
            created: swarm::model::format_time(now),
            ipam,
            internal: req.internal.unwrap_or(false),
            attachable: req.attachable.unwrap_or(false),
            options,
            labels: req.labels.clone().unwrap_or_default(),
            subnet: addr.subnet.to_string(),
            gateway: addr.gateway.to_string(),
            ip_range: addr.ip_range.map(|r| r.to_string()).unwrap_or_default(),
            user_subnet: addr.user_subnet,
            bridge,
            mtu,
        })
    }

    /// Records `n` durably (a new file synced and renamed into place).
    pub fn insert(&self, n: Network) -> Result<()> {
        let json = serde_json::to_vec_pretty(&n)
            .map_err(|e| Error::io("encode a network record")(std::io::Error::other(e)))?;
        let path = self.dir.join(format!("{}.json", n.id));
        let tmp = self.dir.join(format!("{}.json.tmp", n.id));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(Error::io("write a network record"))?;
        self.lock().insert(n.id.clone(), n);
        Ok(())
    }

    /// Forgets network `id` and deletes its record.
    pub fn delete(&self, id: &str) -> Result<()> {
        match std::fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete a network record")(e)),
        }
        self.lock().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> api::NetworkCreateRequest {
        api::NetworkCreateRequest {
            name: name.into(),
            ..Default::default()
        }
    }

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::UNIX_EPOCH
    }

    #[test]
    fn networks_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let nets = LocalNetworks::open(dir.path().join("networks")).unwrap();
        let mut r = req("app");
        r.labels = Some(HashMap::from([("a".to_string(), "b".to_string())]));
        r.internal = Some(true);
        let n = nets.plan(&r, &InUse::default(), now()).unwrap();
        assert_eq!(n.id.len(), 64);
        assert_eq!(n.bridge, format!("br-{}", &n.id[..12]));
        assert_eq!(n.subnet, "172.17.0.0/16");
        assert_eq!(n.gateway, "172.17.0.1");
        nets.insert(n.clone()).unwrap();
        let again = LocalNetworks::open(dir.path().join("networks")).unwrap();
        assert_eq!(again.list(), vec![n.clone()]);
        assert_eq!(again.get("app"), Some(n.clone()));
        assert_eq!(again.get(&n.id[..5]), Some(n.clone()));
        assert_eq!(again.get("nope"), None);
        again.delete(&n.id).unwrap();
        assert!(LocalNetworks::open(dir.path().join("networks"))
            .unwrap()
            .list()
            .is_empty());
    }

    #[test]
    fn names_subnets_and_bridges_are_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let nets = LocalNetworks::open(dir.path().to_path_buf()).unwrap();
        let mut r = req("one");
        r.options = Some(HashMap::from([(
            BRIDGE_NAME_OPTION.to_string(),
            "mybr0".to_string(),
        )]));
        let one = nets.plan(&r, &InUse::default(), now()).unwrap();
        assert_eq!(one.bridge, "mybr0");
        nets.insert(one.clone()).unwrap();
        // The next default pool skips the first network's.
        let two = nets.plan(&req("two"), &InUse::default(), now()).unwrap();
        assert_eq!(two.subnet, "172.18.0.0/16");
        let err = |r: &api::NetworkCreateRequest| {
            nets.plan(r, &InUse::default(), now())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&req("one")), "network with name one already exists");
        assert_eq!(
            err(&req("host")),
            "operation is not permitted on predefined host network "
        );
        let mut same = req("three");
        same.options = r.options.clone();
        assert!(err(&same).ends_with(&format!(
            "conflicts with network {} (mybr0): networks have same bridge name",
            one.id
        )));
        let mut overlap = req("four");
        overlap.ipam = Some(api::Ipam {
            config: Some(vec![api::IpamConfig {
                subnet: Some("172.17.3.0/24".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(
            err(&overlap),
            "Pool overlaps with other one on this address space"
        );
        let mut mtu = req("five");
        mtu.options = Some(HashMap::from([(MTU_OPTION.to_string(), "x".to_string())]));
        assert!(err(&mtu).contains(MTU_OPTION));
    }
}
