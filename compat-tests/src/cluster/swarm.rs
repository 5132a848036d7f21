//! Swarms built in a [`Lab`] the way the tutorials build them: `swarm init`
//! on node1, then `swarm join` with the tokens it prints.

use std::sync::Arc;

use super::Lab;
use super::Node;

/// One row of `docker node ls`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeRow {
    /// `HOSTNAME`.
    pub hostname: String,
    /// `STATUS` (`Ready`, `Down`, `Unknown`).
    pub status: String,
    /// `AVAILABILITY`.
    pub availability: String,
    /// `MANAGER STATUS` (`Leader`, `Reachable`, `Unreachable` or empty).
    pub manager_status: String,
}

/// A swarm of `managers` managers and `workers` workers on new lab nodes
/// (node1 inits); the nodes in order. Panics with the CLI's output when a
/// step fails.
pub fn form(lab: &Lab, managers: usize, workers: usize) -> Vec<Arc<Node>> {
    let nodes: Vec<Arc<Node>> = (0..managers + workers)
        .map(|_| lab.add_node().expect("add a node"))
        .collect();
    form_on(&nodes, managers, &[]);
    nodes
}

/// A swarm on `nodes` (running, in no swarm): the first inits with
/// `init_flags`, the next `managers - 1` join as managers, the rest as
/// workers. Panics with the CLI's output when a step fails.
pub fn form_on(nodes: &[Arc<Node>], managers: usize, init_flags: &[&str]) {
    let n1 = &nodes[0];
    let addr = n1.addr();
    let mut init = vec!["swarm", "init", "--advertise-addr", &addr];
    init.extend_from_slice(init_flags);
    n1.ok(&init);
    let manager_token = n1.ok(&["swarm", "join-token", "-q", "manager"]);
    let worker_token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    let remote = format!("{addr}:2377");
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let token = if i < managers {
            &manager_token
        } else {
            &worker_token
        };
        n.ok(&["swarm", "join", "--token", token.trim(), &remote]);
    }
}

/// `docker node ls` on `n`, sorted by hostname; `None` when the call fails.
pub fn node_ls(n: &Node) -> Option<Vec<NodeRow>> {
    let r = n.docker(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}",
    ]);
    if !r.success() {
        return None;
    }
    let mut rows: Vec<NodeRow> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 4).then(|| NodeRow {
                hostname: f[0].into(),
                status: f[1].into(),
                availability: f[2].into(),
                manager_status: f[3].into(),
            })
        })
        .collect();
    rows.sort();
    Some(rows)
}

/// [`node_ls`] as a closure for `wait_for`: the rows once the call works.
pub fn node_ls_ok(n: &Node) -> impl FnMut() -> Option<Vec<NodeRow>> + '_ {
    move || node_ls(n)
}

/// The hostname `n` shows as Leader, if any.
pub fn leader(n: &Node) -> Option<String> {
    node_ls(n)?
        .into_iter()
        .find(|r| r.manager_status == "Leader")
        .map(|r| r.hostname)
}

/// The hostnames of the nodes running a task of `service` that is meant to
/// run, as `n` reports them (sorted).
pub fn running_on(n: &Node, service: &str) -> Option<Vec<String>> {
    let r = n.docker(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}}|{{.CurrentState}}",
    ]);
    if !r.success() {
        return None;
    }
    let mut hosts: Vec<String> = r
        .stdout
        .lines()
        .filter(|l| l.contains("|Running"))
        .map(|l| l.split('|').next().unwrap_or("").to_string())
        .collect();
    hosts.sort();
    Some(hosts)
}

/// An HTTP server on port 80 serving the container's root, so that
/// `/etc/hostname` names the container that answered.
pub const HTTPD: &[&str] = &["httpd", "-f", "-p", "80", "-h", "/"];

/// The ID of the running container of `svc` on node `n` (one expected),
/// waited for up to a minute.
pub fn container_on(n: &Node, svc: &str) -> String {
    let filter = format!("label=com.docker.swarm.service.name={svc}");
    super::wait_for(
        60,
        &format!("a container of {svc} on node{}", n.n()),
        || {
            let out = n.docker(&["container", "ls", "-q", "--no-trunc", "--filter", &filter]);
            let ids: Vec<String> = out.stdout.lines().map(str::to_string).collect();
            (out.success() && ids.len() == 1).then(|| ids[0].clone())
        },
    )
}

/// `docker service create -d --name NAME --replicas N FLAGS... IMAGE httpd
/// -f -p 80` through `n`: the busybox web server the cluster tests place
/// and move around. Panics with the CLI's output when it fails.
pub fn create_httpd(n: &Node, name: &str, replicas: usize, flags: &[&str]) {
    let replicas = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        &replicas,
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[super::image::TEST_IMAGE, "httpd", "-f", "-p", "80"]);
    n.ok(&args);
}
