//! Simulation speed on random layered DAGs (about 3 dependencies per notebook, log-normal
//! durations): 1k, 10k and 100k notebooks. Targets: 10k under 50 ms, 100k under 1 s on one
//! core. `scripts/bench-sim.sh` prints the same sizes as a table beside a Genie-style reference.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spool_core::gen::LayeredDag;
use spool_core::sched::Policy;
use spool_core::sim::{simulate, SimSetup};
use std::time::Duration;

fn simulate_layered(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for notebooks in [1_000, 10_000, 100_000] {
        let plan = LayeredDag::benchmark(notebooks, 1).generate();
        group.throughput(Throughput::Elements(notebooks as u64));
        for policy in [Policy::CriticalPath, Policy::Fifo] {
            let mut setup = SimSetup::of_plan(&plan);
            setup.policy = policy;
            group.bench_with_input(
                BenchmarkId::new(policy.name(), notebooks),
                &plan,
                |b, plan| b.iter(|| simulate(plan, &setup).makespan_secs),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, simulate_layered);
criterion_main!(benches);
