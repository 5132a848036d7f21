//! Scheduler benchmark: one full `scheduler::pipeline::schedule` call that
//! places every pending task of a large simulated cluster.
//!
//! Default shape (change with environment variables, e.g. for profiling):
//!   SHOAL_BENCH_NODES=1000      ready nodes, labels zone=z0..z9 and
//!                               rack=r0..r49, every 20th a manager, 4/8/16
//!                               CPUs and 8/16/32 GiB
//!   SHOAL_BENCH_SERVICES=1000   services, cycling through five shapes:
//!                               no constraint; `node.labels.zone!=z3`;
//!                               `node.role==worker`; spread over
//!                               node.labels.zone; `node.labels.zone!=z3` +
//!                               spread over node.labels.zone + reservations
//!   SHOAL_BENCH_REPLICAS=100    pending tasks per service
//!
//! Reports tasks placed per second (criterion throughput) and, before
//! criterion runs, the wall time of one untimed-by-criterion call.

use std::time::Duration;
use std::time::Instant;

use criterion::black_box;
use criterion::criterion_group;
use criterion::criterion_main;
use criterion::BenchmarkId;
use criterion::Criterion;
use criterion::SamplingMode;
use criterion::Throughput;
use swarm::model::api;
use swarm::model::Node;
use swarm::model::Task;
use swarm::scheduler::pipeline::ready_node;
use swarm::scheduler::pipeline::schedule;
use swarm::scheduler::Decision;

const G: i64 = 1_000_000_000;
const GIB: i64 = 1 << 30;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic 25-character lowercase base36 ID (like `new_id`, but
/// stable between runs so the benchmark input is always the same).
fn id(prefix: u8, n: u64) -> String {
    let mut x = (u128::from(prefix) << 64) | u128::from(n);
    // Mix so IDs do not sort in creation order (the pipeline tie-breaks on ID).
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    let mut out = [b'0'; 25];
    for slot in out.iter_mut().rev() {
        let d = (x % 36) as u8;
        *slot = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        x /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let zone = format!("z{}", i % 10);
            let rack = format!("r{}", i % 50);
            let (cpus, mem) = match i % 3 {
                0 => (4 * G, 8 * GIB),
                1 => (8 * G, 16 * GIB),
                _ => (16 * G, 32 * GIB),
            };
            let mut node = ready_node(
                &id(1, i as u64),
                &[("zone", &zone), ("rack", &rack)],
                cpus,
                mem,
            );
            let api_node = &mut node.api;
            api_node.description.as_mut().expect("description").hostname =
                Some(format!("sim-node-{i:04}"));
            api_node.description.as_mut().expect("description").platform = Some(api::Platform {
                os: Some("linux".into()),
                architecture: Some("x86_64".into()),
            });
            if i % 20 == 0 {
                api_node.spec.as_mut().expect("spec").role = Some(api::NodeSpecRoleEnum::MANAGER);
                node.role = Some(api::NodeSpecRoleEnum::MANAGER);
            } else {
                node.role = Some(api::NodeSpecRoleEnum::WORKER);
            }
            node
        })
        .collect()
}

fn task_spec(shape: usize) -> api::TaskSpec {
    let spread = || {
        Some(vec![api::TaskSpecPlacementPreferences {
            spread: Some(api::TaskSpecPlacementSpread {
                spread_descriptor: Some("node.labels.zone".into()),
            }),
        }])
    };
    let (constraints, preferences, reservations) = match shape {
        0 => (vec![], None, None),
        1 => (vec!["node.labels.zone!=z3".to_string()], None, None),
        2 => (vec!["node.role==worker".to_string()], None, None),
        3 => (vec![], spread(), None),
        _ => (
            vec!["node.labels.zone!=z3".to_string()],
            spread(),
            Some(api::ResourceObject {
                nano_cpus: Some(G / 100),
                memory_bytes: Some(16 << 20),
                ..Default::default()
            }),
        ),
    };
    api::TaskSpec {
        container_spec: Some(api::TaskSpecContainerSpec {
            image: Some("shoal-test/busybox:latest".into()),
            args: Some(vec!["sleep".into(), "3600".into()]),
            ..Default::default()
        }),
        placement: Some(api::TaskSpecPlacement {
            constraints: Some(constraints),
            preferences,
            ..Default::default()
        }),
        resources: reservations.map(|r| api::TaskSpecResources {
            reservations: Some(r),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pending_tasks(services: usize, replicas: usize) -> Vec<Task> {
    let mut out = Vec::with_capacity(services * replicas);
    for s in 0..services {
        let service_id = id(2, s as u64);
        let spec = task_spec(s % 5);
        for slot in 1..=replicas {
            let mut t = Task::default();
            t.api.id = Some(id(3, (s * replicas + slot) as u64));
            t.api.service_id = Some(service_id.clone());
            t.api.slot = Some(slot as i64);
            t.api.spec = Some(spec.clone());
            t.api.desired_state = Some(api::TaskState::RUNNING);
            t.api.status = Some(api::TaskStatus {
                timestamp: Some("2024-01-01T00:00:00Z".into()),
                state: Some(api::TaskState::PENDING),
                message: Some("pending task scheduling".into()),
                ..Default::default()
            });
            t.spec_version = 1;
            out.push(t);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let n_nodes = env_or("SHOAL_BENCH_NODES", 1000);
    let n_services = env_or("SHOAL_BENCH_SERVICES", 1000);
    let n_replicas = env_or("SHOAL_BENCH_REPLICAS", 100);
    let nodes = nodes(n_nodes);
    let queue = pending_tasks(n_services, n_replicas);
    let n_tasks = queue.len();

    // One call outside criterion: check every task is placed and report the
    // rate even if criterion's sampling is later cut short.
    let t = Instant::now();
    let decisions = schedule(&nodes, &[], &queue);
    let took = t.elapsed();
    let placed = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Assign { .. }))
        .count();
    assert_eq!(decisions.len(), n_tasks);
    assert_eq!(placed, n_tasks, "every task should be placeable");
    println!(
        "scheduler: {n_nodes} nodes, {n_services} services x {n_replicas} tasks: \
         one schedule() call placed {placed} tasks in {took:.2?} = {:.0} tasks/s",
        placed as f64 / took.as_secs_f64()
    );

    let mut g = c.benchmark_group("scheduler");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(n_tasks as u64));
    g.bench_with_input(
        BenchmarkId::new("schedule", format!("{n_nodes}n_{n_tasks}t")),
        &(nodes, queue),
        |b, (nodes, queue)| b.iter(|| black_box(schedule(nodes, &[], queue))),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
