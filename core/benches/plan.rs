//! The plan's graph questions on random layered DAGs (about 3 dependencies per notebook): 1k,
//! 10k and 100k notebooks. `levels` is what `spool plan` lists, `remaining_path_secs` the
//! critical-path priority every run and dry run starts with, `critical_path` what `spool plan`
//! and the quality suite report.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spool_core::gen::LayeredDag;
use std::time::Duration;

fn plan_graph(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for notebooks in [1_000, 10_000, 100_000] {
        let plan = LayeredDag::benchmark(notebooks, 1).generate();
        group.throughput(Throughput::Elements(notebooks as u64));
        group.bench_with_input(BenchmarkId::new("levels", notebooks), &plan, |b, plan| {
            b.iter(|| plan.levels())
        });
        group.bench_with_input(
            BenchmarkId::new("remaining_path_secs", notebooks),
            &plan,
            |b, plan| b.iter(|| plan.remaining_path_secs()),
        );
        group.bench_with_input(
            BenchmarkId::new("critical_path", notebooks),
            &plan,
            |b, plan| b.iter(|| plan.critical_path()),
        );
    }
    group.finish();
}

criterion_group!(benches, plan_graph);
criterion_main!(benches);
