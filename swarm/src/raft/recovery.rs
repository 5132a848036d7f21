//! `docker swarm init --force-new-cluster`: a manager that lost its quorum
//! becomes the only member of a new raft cluster with all of its state.
//!
//! The applied store becomes a snapshot at the last applied entry whose
//! membership names this manager alone, and the log restarts after it. On
//! start, raft sees a one-voter cluster, elects this manager, and the store
//! (object versions included) goes on from where it was.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use openraft::BasicNode;
use openraft::LogId;
use openraft::Membership;
use openraft::SnapshotMeta;
use openraft::StoredMembership;
use openraft::Vote;

use super::encryption::Sealer;
use super::NodeId;
use crate::error::Error;
use crate::error::Result;
use crate::store::StoreSnapshot;
use crate::store::Tables;

/// Rewrites the raft data in `dir` so that `id` (reachable at `addr`) is the
/// only member, keeping `tables` as applied at `last` in `term`. Raft must
/// not be running on `dir`.
pub fn force_new_cluster(
    dir: &Path,
    sealer: Arc<Sealer>,
    tables: &Tables,
    last: LogId<NodeId>,
    term: u64,
    id: NodeId,
    addr: &str,
) -> Result<()> {
    let internal = |e: &dyn std::fmt::Display| Error::internal(format!("force new cluster: {e}"));
    let data = StoreSnapshot::encode(tables).map_err(|e| internal(&e))?;
    let nodes: BTreeMap<NodeId, BasicNode> = BTreeMap::from([(id, BasicNode::new(addr))]);
    let membership = Membership::new(vec![BTreeSet::from([id])], nodes);
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!("force-new-cluster-{}", last.index),
    };
    super::state_machine::write_snapshot(dir, sealer.clone(), &meta, &data)
        .map_err(|e| internal(&e))?;
    let log =
        super::LogStore::open_waiting(&dir.join("log.redb"), sealer).map_err(|e| internal(&e))?;
    log.reset_after(last, &Vote::new(term, id))
        .map_err(|e| internal(&e))?;
    Ok(())
}
