//! Store commit benchmark: one-secret transactions through raft with the
//! encrypted redb log (fsync per commit), as `docker secret create` would do.
//! Reports throughput; p99 latency is printed from a separate timed pass.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use criterion::criterion_group;
use criterion::criterion_main;
use criterion::Criterion;
use swarm::model::api;
use swarm::model::new_id;
use swarm::model::Secret;
use swarm::raft;
use swarm::store::SharedState;
use swarm::store::Store;

fn secret(i: u64) -> Secret {
    let mut s = Secret::default();
    s.api.id = Some(new_id());
    s.api.spec = Some(api::SecretSpec {
        name: Some(format!("bench-{i}-{}", new_id())),
        data: Some("c2VjcmV0".into()),
        ..Default::default()
    });
    s
}

async fn open(dir: &std::path::Path) -> (raft::ShoalRaft, Arc<Store>) {
    let state = SharedState::new(1024);
    let sealer = Arc::new(raft::encryption::Sealer::generate());
    let r = raft::start(
        dir,
        sealer,
        state.clone(),
        1,
        &raft::RaftSettings::default(),
        raft::network::Solo,
    )
    .await
    .expect("raft");
    raft::bootstrap(&r, 1, "127.0.0.1:2377")
        .await
        .expect("bootstrap");
    raft::wait_leader(&r, 1, Duration::from_secs(10))
        .await
        .expect("leader");
    let store = Store::new(
        state.clone(),
        Arc::new(raft::RaftProposer::new(r.clone(), state, None)),
    );
    (r, store)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (r, store) = rt.block_on(open(dir.path()));
    let mut n = 0u64;
    c.bench_function("store_commit_fsync", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let s = secret(n);
            let store = store.clone();
            async move {
                store
                    .update(|tx| tx.create(s.clone()))
                    .await
                    .expect("commit")
            }
        })
    });
    // p99 of 500 sequential commits.
    let mut lat: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(500);
        for i in 0..500u64 {
            let s = secret(1_000_000 + i);
            let t = Instant::now();
            store
                .update(|tx| tx.create(s.clone()))
                .await
                .expect("commit");
            v.push(t.elapsed());
        }
        v
    });
    lat.sort();
    println!(
        "store_commit_fsync: p50 {:?} p99 {:?} over {} commits",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat.len()
    );
    rt.block_on(async {
        let _ = r.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
