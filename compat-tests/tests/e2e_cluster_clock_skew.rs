//! End-to-end: the wall clock jumping on one node of a cluster (libfaketime
//! in that node's shoald alone; every other process keeps the real time).
//! A manager of three goes a day ahead and back. Then, with the shortest
//! certificate expiry (1h, every node's certificate rotated onto it), the
//! same manager and then a worker go 50 minutes ahead, past every due time
//! such a certificate can have but not past its expiry, and back. After each
//! step the cluster has one leader, every node is Ready, a write works
//! through every manager and a new global service starts a task on every
//! node. Each jumped node renews its certificate within the renewer's
//! recheck interval (10 s) of the jump, once: the manager signs its own with
//! its own clock; the worker's comes from a manager, dated by that clock, so
//! it is due again by the worker's at once, and the worker says its clock is
//! ahead of the CA's instead of renewing again and again.
//!
//! A jump past the expiry of the peers' certificates is not tried: the node
//! then finds every peer's certificate expired, as a Go node of dockerd does.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use compat_tests::cluster::clock;
use compat_tests::cluster::clock::NodeClock;
use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::node::tail;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

const DAY: i64 = 86_400;
/// Past the latest due time of a one-hour certificate (36 minutes after it
/// was signed: four fifths of its two hours, an hour of them backdated),
/// short of its expiry.
const AHEAD: i64 = 50 * 60;
/// The renewer's log line for each certificate it installs.
const RENEWED: &str = "node certificate renewed";
/// The renewer's warning when a certificate arrives already due.
const AHEAD_OF_CA: &str = "clock is ahead of the CA's by about ";
/// How long after a renewal a second one is looked for: two of the
/// renewer's rechecks (a renewal loop shows within one).
const NO_SECOND_RENEWAL: Duration = Duration::from_secs(20);

/// The node's certificate as it is on disk (empty when there is none).
fn cert(n: &Node) -> String {
    let p = n.data_root().join("swarm/certificates/swarm-node.crt");
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The node's certificate's `notAfter`, in Unix seconds.
fn not_after(n: &Node) -> i64 {
    let p = n.data_root().join("swarm/certificates/swarm-node.crt");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(&p)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let date = text.trim().trim_start_matches("notAfter=");
    clock::unix_seconds(date).unwrap_or_else(|| panic!("notAfter of {}: {text}", p.display()))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The minutes the renewer said the clock is ahead by, once it said so.
fn minutes_ahead(log: &str) -> Option<u64> {
    let rest = &log[log.find(AHEAD_OF_CA)? + AHEAD_OF_CA.len()..];
    rest.split('m').next()?.parse().ok()
}

fn renewals(n: &Node) -> usize {
    n.engine_log().matches(RENEWED).count()
}

/// Moves `n`'s clock `AHEAD` and waits for the certificate it renews;
/// returns how long that took from the clock showing the jump, with the
/// renewals counted before the jump and when the renewal was seen.
fn jump_until_renewed(n: &Node, clock: &NodeClock) -> (Duration, usize, Instant) {
    let (before, count) = (cert(n), renewals(n));
    clock.set(n, AHEAD).expect("clock ahead");
    let jumped = Instant::now();
    wait_for(
        20,
        &format!("node{} renewing its certificate after the jump", n.n()),
        || (cert(n) != before).then_some(()),
    );
    (jumped.elapsed(), count, Instant::now())
}

/// Asserts that `n` renewed once since it had `count` renewals, and looks
/// for a second renewal until `NO_SECOND_RENEWAL` after `renewed`.
fn renewed_once(n: &Node, count: usize, renewed: Instant) {
    let window = NO_SECOND_RENEWAL.saturating_sub(renewed.elapsed());
    let again = compat_tests::cluster::procs::try_wait_for(window, || {
        (renewals(n) > count + 1).then_some(())
    });
    let log = n.engine_log();
    assert!(
        again.is_none() && renewals(n) == count + 1,
        "node{}: one renewal after the jump, then none for {NO_SECOND_RENEWAL:?}:\n{}",
        n.n(),
        tail(&log, 40)
    );
}

/// What a user checks after each step: as every manager sees it, one
/// leader, the other managers Reachable and every node Ready; a write
/// through every manager; and a global service created through `via`
/// running a task on every node (then removed).
fn holds(nodes: &[Arc<Node>], managers: usize, step: &str, via: &Node) {
    for m in &nodes[..managers] {
        wait_for(
            60,
            &format!("{step}: node{} shows a leader and every node Ready", m.n()),
            || {
                let rows = swarm::node_ls(m)?;
                let count = |s: &str| rows.iter().filter(|r| r.manager_status == s).count();
                let ok = rows.len() == nodes.len()
                    && rows.iter().all(|r| r.status == "Ready")
                    && count("Leader") == 1
                    && count("Reachable") == managers - 1;
                ok.then_some(())
            },
        );
        let name = format!("{step}-{}", m.hostname());
        let r = m.docker_within(
            Duration::from_secs(30),
            &["secret", "create", &name, "-"],
            Some(step.as_bytes()),
        );
        assert!(r.success(), "{step}: write through node{}: {r:?}", m.n());
    }
    via.ok(&[
        "service", "create", "-d", "--name", step, "--mode", "global", TEST_IMAGE, "httpd", "-f",
        "-p", "80",
    ]);
    let mut all: Vec<String> = nodes.iter().map(|n| n.hostname()).collect();
    all.sort();
    wait_for(90, &format!("{step}: a task on every node"), || {
        swarm::running_on(via, step).filter(|h| *h == all)
    });
    via.ok(&["service", "rm", step]);
}

#[test]
fn e2e_cluster_clock_skew() {
    if let Some(why) = clock::missing() {
        assert!(
            std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_none(),
            "libfaketime is required here: {why}"
        );
        eprintln!("skipping: {why}");
        return;
    }
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes: Vec<Arc<Node>> = (0..4).map(|_| lab.add_node().expect("node")).collect();
    let (n1, n2, n3, n4) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let clock3 = NodeClock::install(n3).expect("node3's clock");
    let clock4 = NodeClock::install(n4).expect("node4's clock");
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    let managers = &nodes[..3];
    swarm::form_on(managers, 3, &[]);
    holds(managers, 3, "start", n1);

    // A manager a day ahead: its 90-day certificate is not due, its peers'
    // are still valid by its clock and its own by theirs.
    let cert3 = cert(n3);
    clock3.set(n3, DAY).expect("node3 a day ahead");
    holds(managers, 3, "a-day-ahead", n3);
    clock3.set(n3, 0).expect("node3 back");
    holds(managers, 3, "back-from-a-day", n2);
    assert_eq!(cert(n3), cert3, "node3 renewed a certificate not due");

    // The shortest expiry, and every manager on a certificate for an hour
    // (a root rotation renews them all).
    n1.ok(&["swarm", "update", "--cert-expiry", "1h"]);
    let r = n2.docker_within(Duration::from_secs(120), &["swarm", "ca", "--rotate"], None);
    assert!(r.success(), "{r:?}");
    let left3 = not_after(n3) - now_s();
    assert!(
        (3000..=3600).contains(&left3),
        "an hour's certificate: {left3}s left"
    );

    // The manager 50 minutes ahead: past its due time. It renews from its
    // own CA, so the new certificate is dated by its own clock and not due.
    let (took3, count3, at3) = jump_until_renewed(n3, &clock3);
    holds(managers, 3, "manager-ahead", n1);
    renewed_once(n3, count3, at3);
    clock3.set(n3, 0).expect("node3 back");
    holds(managers, 3, "manager-back", n2);
    assert_eq!(renewals(n3), count3 + 1, "{}", tail(&n3.engine_log(), 40));

    // A worker joins with a certificate for an hour and goes 50 minutes
    // ahead. Its new certificate, dated by a manager's clock, is due again
    // by its own at once: it says so once and keeps it.
    let token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    let remote = format!("{}:2377", n1.addr());
    n4.ok(&["swarm", "join", "--token", token.trim(), &remote]);
    holds(&nodes, 3, "worker-joined", n1);
    let left4 = not_after(n4) - now_s();
    assert!(
        (3000..=3600).contains(&left4),
        "an hour's certificate: {left4}s left"
    );
    let (took4, count4, at4) = jump_until_renewed(n4, &clock4);
    let ahead = wait_for(20, "node4 saying its clock is ahead of the CA's", || {
        minutes_ahead(&n4.engine_log())
    });
    assert!((45..=55).contains(&ahead), "ahead by {ahead} min");
    holds(&nodes, 3, "worker-ahead", n2);
    renewed_once(n4, count4, at4);
    clock4.set(n4, 0).expect("node4 back");
    holds(&nodes, 3, "worker-back", n3);
    let log4 = n4.engine_log();
    assert_eq!(renewals(n4), count4 + 1, "{}", tail(&log4, 40));
    assert_eq!(log4.matches(AHEAD_OF_CA).count(), 1, "{}", tail(&log4, 40));
    assert!(!n3.engine_log().contains(AHEAD_OF_CA));
    for n in &nodes {
        assert!(!n.engine_log().contains("panicked"), "node{}", n.n());
    }
    eprintln!(
        "node3 (manager) a day ahead and back, then node3 and node4 (worker) {} min ahead and \
         back: a leader, every node Ready, writes through every manager and tasks on every node \
         after each step; renewed after the 50-minute jump within {:.1}s (node3) and {:.1}s \
         (node4) of the clock showing it, once each, none again within {NO_SECOND_RENEWAL:?}; \
         node4 said it was {ahead} min ahead of the CA",
        AHEAD / 60,
        took3.as_secs_f64(),
        took4.as_secs_f64(),
    );
}
