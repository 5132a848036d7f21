//! The driver's side of published ports: the routing mesh follows the
//! service records ([`NetworkAttacher::update_dns`]), host-mode ports
//! follow [`NetworkAttacher::publish_host_ports`]; both go the crate's one
//! way (desired state, diff, actions, record) under the state lock.
//!
//! [`NetworkAttacher::update_dns`]: swarm::exec::NetworkAttacher::update_dns
//! [`NetworkAttacher::publish_host_ports`]: swarm::exec::NetworkAttacher::publish_host_ports

use swarm::exec::HostPort;
use swarm::exec::ServiceRecords;

use crate::error::Result;
use crate::ingress;
use crate::netlink::Netlink;
use crate::netns;
use crate::ports;
use crate::state;
use crate::state::NodeState;
use crate::OverlayDriver;

impl OverlayDriver {
    /// Makes the routing mesh match `records`: the ingress sandbox with the
    /// published ports and their backends while any port is published in
    /// ingress mode, nothing of it otherwise.
    pub(crate) async fn apply_ingress(&self, records: &ServiceRecords) -> Result<()> {
        let wanted = ingress::wanted(records)?;
        let mut current = self.state.lock().await;
        if wanted.is_none() && current.ingress.is_none() {
            return Ok(());
        }
        let host = Netlink::here()?;
        let before = self.ingress_still_present(&current, &host).await;
        let after = match wanted {
            None => before.with_ingress(None, None),
            Some(w) => {
                let egress = match &before.egress {
                    Some(e) => e.clone(),
                    None => self.pick_egress(&host).await?,
                };
                // A network already plumbed for tasks keeps its record.
                let network = before
                    .networks
                    .get(&w.network.id)
                    .cloned()
                    .unwrap_or(w.network);
                let record = ingress::plan(&before, &network, w.ports, w.lb_address, &egress)?;
                before.with_ingress(Some((network, record)), Some(&egress))
            }
        };
        if after == before && before == *current {
            return Ok(());
        }
        self.move_to(&host, &mut current, &before, after).await?;
        // Logged by the sync, and tried again with the next records.
        let _ = self.sync_overlay(&host, &current).await;
        tracing::info!(
            ports = current.ingress.as_ref().map_or(0, |i| i.ports.len()),
            "routing mesh updated"
        );
        Ok(())
    }

    /// `current` without the routing mesh's plumbing that has gone missing
    /// behind the driver's back (the sandbox, or its gateway bridge port),
    /// so it is made again.
    async fn ingress_still_present(&self, current: &NodeState, host: &Netlink) -> NodeState {
        let mut before = current.clone();
        let Some(rec) = &current.ingress else {
            return before;
        };
        if !netns::is_mounted(&self.sandbox_path(&rec.network)) {
            before.networks.remove(&rec.network);
            before.ingress = None;
        } else if host.index(&rec.iface.peer).await.ok().flatten().is_none() {
            before.ingress = None;
        }
        before
    }

    /// Forwards `task`'s host-mode `ports` (replacing what it published
    /// before), after checking that the node can give them.
    pub(crate) async fn publish_ports(&self, task: &str, ports: &[HostPort]) -> Result<()> {
        state::check_id(task)?;
        let mut current = self.state.lock().await;
        if !current.tasks.contains_key(task) {
            if ports.is_empty() {
                return Ok(());
            }
            return Err(state::PlanError::NotAttached(task.to_string()).into());
        }
        ports::check(&current, task, ports)?;
        ports::probe(&current, task, ports)?;
        let after = current.with_host_ports(task, ports);
        if after == *current {
            return Ok(());
        }
        let host = Netlink::here()?;
        let before = current.clone();
        self.move_to(&host, &mut current, &before, after).await?;
        // Logged by the sync, and tried again with the next records.
        let _ = self.sync_overlay(&host, &current).await;
        tracing::info!(task, ports = ports.len(), "host-mode ports published");
        Ok(())
    }

    /// Runs the actions from `before` (what the kernel holds; `current`
    /// unless something went missing) to `after` and records `after`. On
    /// failure what was made is undone and `current` stays.
    pub(crate) async fn move_to(
        &self,
        host: &Netlink,
        current: &mut NodeState,
        before: &NodeState,
        after: NodeState,
    ) -> Result<()> {
        let applied = match self
            .run_until_error(host, &state::diff(before, &after))
            .await
        {
            Ok(()) => self.save(&after),
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            // Every removal tolerates what was never made.
            if let Err(u) = self.run_all(host, &state::diff(&after, before)).await {
                tracing::warn!(error = %u, "undoing a failed port change");
            }
            return Err(e);
        }
        *current = after;
        Ok(())
    }
}
