//! Seeded random numbers and random layered DAGs, for the simulator's duration variation, the
//! property tests, the benchmarks and `spool simulate --generate`. Written here rather than taken
//! from `rand` so the core stays free of `getrandom` on wasm, and so that a seed means the same
//! numbers on every platform and in every version.

use crate::dag::{ParamScope, Plan, Task, TaskKind};
use crate::model::{Condition, Pool, RunSettings};
use std::collections::BTreeMap;

/// SplitMix64 (Steele, Lea and Flood): tiny, fast, and every seed, 0 included, gives a good
/// stream.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A stream that depends only on `seed` and the two keys: the simulator draws an attempt's
    /// duration from `(seed, task, attempt)`, so draws do not depend on the order in which a
    /// policy starts tasks and two policies are compared on the same durations.
    pub fn keyed(seed: u64, a: u64, b: u64) -> Self {
        let mut s = SplitMix64::new(seed);
        let ka = s.next_u64() ^ a.wrapping_mul(Self::GAMMA);
        let mut s = SplitMix64::new(ka);
        let kb = s.next_u64() ^ b.wrapping_mul(Self::GAMMA);
        SplitMix64::new(kb)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` > 0); the modulo bias is below 2^-32 for the sizes used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A standard normal variate (Box–Muller; the second value of the pair is dropped to keep
    /// the state a single integer). `libm`, not the platform's maths library, so that the
    /// browser (WebAssembly) and the server draw the same bits.
    pub fn normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(std::f64::consts::TAU * u2)
    }

    /// A log-normal factor with the given spread whose mean is 1: multiplying an estimate by it
    /// keeps the expected total work equal to the estimated one.
    pub fn lognormal_factor(&mut self, sigma: f64) -> f64 {
        libm::exp(sigma * self.normal() - sigma * sigma / 2.0)
    }
}

/// Shape of a random layered DAG: notebooks in layers, each notebook after the first layer
/// depending on a few notebooks of the layers just above it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayeredDag {
    pub notebooks: usize,
    /// Number of layers; 0 picks about the square root of `notebooks`.
    pub layers: usize,
    /// Mean number of dependencies of a notebook outside the first layer.
    pub edges_per_notebook: f64,
    /// How many layers back a dependency may reach (at least 1: the layer just above).
    pub reach: usize,
    /// Median of the log-normal `estimate_secs`.
    pub median_secs: f64,
    /// Spread of the log-normal `estimate_secs`: 0 for equal durations, 1 and more for skewed
    /// workloads where a few notebooks dominate.
    pub sigma: f64,
    /// Share of notebooks that take more than one slot.
    pub wide_share: f64,
    /// Slots of a wide notebook are drawn from `2..=max_slots`.
    pub max_slots: u32,
    pub executors: u32,
    pub executor_cores: u32,
    pub seed: u64,
}

impl LayeredDag {
    /// The benchmark shape: about 3 dependencies per notebook, log-normal durations with a
    /// median of one minute, one-slot notebooks, 16 executors of 4 cores.
    pub fn benchmark(notebooks: usize, seed: u64) -> Self {
        LayeredDag {
            notebooks,
            layers: 0,
            edges_per_notebook: 3.0,
            reach: 3,
            median_secs: 60.0,
            sigma: 1.0,
            wide_share: 0.0,
            max_slots: 1,
            executors: 16,
            executor_cores: 4,
            seed,
        }
    }

    /// The plan: notebooks `nb0`, `nb1`, ... in topological order, every dependency on
    /// `succeeded`. Generated plans have no declared-edge list and no inactive steps.
    pub fn generate(&self) -> Plan {
        let n = self.notebooks;
        let mut rng = SplitMix64::new(self.seed);
        let layers = if self.layers == 0 {
            ((n as f64).sqrt().round() as usize).max(1)
        } else {
            self.layers.min(n.max(1))
        };
        // Layer boundaries: `starts[l]..starts[l + 1]` are the notebooks of layer `l`.
        let starts: Vec<usize> = (0..=layers).map(|l| l * n / layers).collect();
        let mut tasks = Vec::with_capacity(n);
        let mut deps: Vec<Vec<(usize, Condition)>> = Vec::with_capacity(n);
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let reach = self.reach.max(1);
        for layer in 0..layers {
            let first_parent = starts[layer.saturating_sub(reach)];
            let parents = first_parent..starts[layer];
            for t in starts[layer]..starts[layer + 1] {
                let mut mine: Vec<(usize, Condition)> = Vec::new();
                if !parents.is_empty() {
                    let want = self.dependency_count(&mut rng).min(parents.len());
                    // Half the dependencies on the layer just above keeps the layers meaningful.
                    let above = starts[layer - 1]..starts[layer];
                    while mine.len() < want {
                        let range = if rng.below(2) == 0 { &above } else { &parents };
                        let p = range.start + rng.below(range.len() as u64) as usize;
                        if !mine.iter().any(|&(q, _)| q == p) {
                            mine.push((p, Condition::SUCCEEDED));
                        }
                    }
                    mine.sort_unstable_by_key(|&(p, _)| p);
                }
                for &(p, _) in &mine {
                    dependents[p].push(t);
                }
                deps.push(mine);
                let estimate_secs = self.median_secs * libm::exp(self.sigma * rng.normal());
                let slots = if rng.next_f64() < self.wide_share {
                    2 + rng.below(u64::from(self.max_slots.saturating_sub(1).max(1))) as u32
                } else {
                    1
                };
                tasks.push(Task {
                    id: format!("nb{t}"),
                    kind: TaskKind::Notebook,
                    path: format!("nb{t}.py"),
                    params: BTreeMap::new(),
                    settings: RunSettings {
                        estimate_secs,
                        slots,
                        ..RunSettings::default()
                    },
                    scope: 0,
                    conditions: Vec::new(),
                    for_each: None,
                    iteration: None,
                });
            }
        }
        Plan {
            name: format!("layered-{n}-seed-{}", self.seed),
            description: None,
            pool: Pool {
                executors: self.executors.max(1),
                executor_cores: self.executor_cores.max(1),
                ..Pool::default()
            },
            tasks,
            deps,
            dependents,
            inactive: Vec::new(),
            declared: Vec::new(),
            scopes: vec![ParamScope::root(BTreeMap::new())],
            timeout_secs: None,
            schedule: None,
            concurrency: Default::default(),
            notify: Vec::new(),
        }
    }

    /// 1 plus a binomial draw, with the requested mean.
    fn dependency_count(&self, rng: &mut SplitMix64) -> usize {
        let extra = (self.edges_per_notebook - 1.0).max(0.0);
        let trials = (2.0 * extra).ceil() as usize;
        if trials == 0 {
            return 1;
        }
        let p = extra / trials as f64;
        1 + (0..trials).filter(|_| rng.next_f64() < p).count()
    }
}

/// The schedule-quality suite: `count` DAGs of 50 to 400 notebooks whose shapes vary in width,
/// depth, spread of durations (every third one skewed, sigma 1.5) and share of wide notebooks.
/// Each pool is sized so that the work over the capacity is between half and twice the
/// critical path: where the order of ready notebooks matters most (in a much larger pool
/// everything runs at once, in a much smaller one any order keeps the pool busy).
pub fn quality_suite(count: usize, seed: u64) -> Vec<LayeredDag> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| {
            let notebooks = 50 + rng.below(351) as usize;
            let layers = 3 + rng.below(((notebooks / 4) as u64).max(1)) as usize;
            let sigma = match i % 3 {
                0 => 1.5,
                1 => 0.8,
                _ => 0.3,
            };
            let mut dag = LayeredDag {
                notebooks,
                layers,
                edges_per_notebook: 1.0 + 3.0 * rng.next_f64(),
                reach: 1 + rng.below(3) as usize,
                median_secs: 60.0,
                sigma,
                wide_share: if rng.below(2) == 0 { 0.0 } else { 0.25 },
                max_slots: 4,
                executors: 1,
                executor_cores: 4,
                seed: rng.next_u64(),
            };
            let balance = 0.5 + 1.5 * rng.next_f64();
            let plan = dag.generate();
            let (_, critical) = plan.critical_path();
            let slots = plan.total_work_slot_secs() / (balance * critical.max(1.0));
            dag.executors = (slots / f64::from(dag.executor_cores))
                .ceil()
                .clamp(1.0, 256.0) as u32;
            dag
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_keys_matter() {
        let a: Vec<u64> = (0..4).map(|_| SplitMix64::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let x = SplitMix64::keyed(1, 2, 3).next_u64();
        assert_eq!(x, SplitMix64::keyed(1, 2, 3).next_u64());
        assert_ne!(x, SplitMix64::keyed(1, 3, 2).next_u64());
        assert_ne!(x, SplitMix64::keyed(2, 2, 3).next_u64());
    }

    #[test]
    fn lognormal_factor_has_mean_one() {
        let mut rng = SplitMix64::new(42);
        let n = 200_000;
        let mean = (0..n).map(|_| rng.lognormal_factor(0.5)).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn layered_dag_is_topological_with_about_three_edges_each() {
        let plan = LayeredDag::benchmark(10_000, 3).generate();
        assert_eq!(plan.tasks.len(), 10_000);
        let mut edges = 0;
        for (t, deps) in plan.deps.iter().enumerate() {
            for &(d, _) in deps {
                assert!(d < t, "dependency {d} of {t} comes later");
                assert!(plan.dependents[d].contains(&t));
            }
            edges += deps.len();
        }
        let per_node = edges as f64 / 10_000.0;
        assert!(
            (2.6..3.2).contains(&per_node),
            "{per_node} edges per notebook"
        );
        assert_eq!(plan, LayeredDag::benchmark(10_000, 3).generate());
        assert_ne!(plan, LayeredDag::benchmark(10_000, 4).generate());
    }
}
