//! The cost of one balancer pick, per policy, at 10, 100 and 1,000 endpoints (weights 1–3,
//! the first pick of a request: nothing tried). Hashing policies get a different key hash
//! on every pick. The target: ≤ 100 ns for round robin, P2C and Maglev.
//!
//! `balance_build/*` is the cost of building a balancer (on endpoint-set and health
//! changes).
//!
//! Run: `cargo bench --bench balance` (`-- --quick` on a busy machine).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weir::balance::{self, EndpointLoad, Outcome, PickContext, Target};
use weir::snapshot::{HashKey, LbPolicy, LoadBalancer};

fn targets(n: usize) -> Vec<Target> {
    (0..n)
        .map(|i| {
            let load = Arc::new(EndpointLoad::default());
            load.in_flight
                .store((i % 7) as u64, std::sync::atomic::Ordering::Relaxed);
            load.complete(&Outcome {
                status: Some(200),
                latency: Duration::from_micros(500 + (i as u64 % 13) * 100),
            });
            Target {
                member: i,
                address: format!("10.0.{}.{}:8080", i / 250, i % 250)
                    .parse()
                    .expect("addr"),
                weight: 1 + i as u32 % 3,
                load,
                joined: None,
            }
        })
        .collect()
}

fn picks(c: &mut Criterion) {
    let key = HashKey::Header(http::HeaderName::from_static("x-user"));
    let policies = [
        ("round_robin", LbPolicy::RoundRobin, false),
        ("random", LbPolicy::Random, false),
        ("least_request", LbPolicy::LeastRequest, false),
        (
            "peak_ewma",
            LbPolicy::PeakEwma {
                decay: Duration::from_secs(10),
            },
            false,
        ),
        (
            "ring_hash",
            LbPolicy::RingHash {
                key: key.clone(),
                min_ring_size: 1024,
            },
            true,
        ),
        ("maglev", LbPolicy::Maglev { key: key.clone() }, true),
    ];
    let mut group = c.benchmark_group("balance");
    for (name, policy, hashed) in policies {
        let lb = LoadBalancer {
            policy,
            ..LoadBalancer::default()
        };
        for n in [10, 100, 1000] {
            let b = balance::build(&lb, targets(n));
            let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| {
                    // A cheap, well-mixed new key per pick (an LCG step), so hashing
                    // policies do not hit one cache line.
                    h = h
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let ctx = PickContext {
                        hash: hashed.then_some(h),
                        ..PickContext::default()
                    };
                    black_box(b.pick(black_box(&ctx)))
                })
            });
        }
    }
    group.finish();
}

/// Building a balancer, which happens on every change of an endpoint set or of any
/// endpoint's health (the hashing policies build their ring or table then).
fn builds(c: &mut Criterion) {
    let key = HashKey::Header(http::HeaderName::from_static("x-user"));
    let mut group = c.benchmark_group("balance_build");
    for (name, policy) in [
        ("round_robin", LbPolicy::RoundRobin),
        (
            "ring_hash_1024",
            LbPolicy::RingHash {
                key: key.clone(),
                min_ring_size: 1024,
            },
        ),
        ("maglev", LbPolicy::Maglev { key: key.clone() }),
    ] {
        let lb = LoadBalancer {
            policy,
            ..LoadBalancer::default()
        };
        for n in [10, 1000] {
            let t = targets(n);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| black_box(balance::build(&lb, t.clone())))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = picks, builds
}
criterion_main!(benches);
