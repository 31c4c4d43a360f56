//! Overlapping runs: what happens to a new run of a pipeline while others are in progress
//! (`max_concurrent_runs`, `on_overlap`), and the server's fair queue under its own cap on runs
//! at once. A state machine over run ids, without I/O: the server records what it decides
//! and starts or cancels runs as it says.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Runs waiting in one queue at most; a run beyond is skipped.
pub const MAX_QUEUED: usize = 1000;

/// What a new run does when its pipeline already has `max_concurrent_runs` in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOverlap {
    /// Wait until one ends.
    Queue,
    /// Do not run.
    Skip,
    /// Cancel the runs in progress, then run.
    CancelRunning,
}

impl OnOverlap {
    pub const NAMES: [&'static str; 3] = ["queue", "skip", "cancel_running"];

    pub fn parse(s: &str) -> Option<OnOverlap> {
        match s {
            "queue" => Some(OnOverlap::Queue),
            "skip" => Some(OnOverlap::Skip),
            "cancel_running" => Some(OnOverlap::CancelRunning),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A pipeline's rule for its own runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Concurrency {
    pub max_runs: u32,
    pub on_overlap: OnOverlap,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            max_runs: 1,
            on_overlap: OnOverlap::Queue,
        }
    }
}

/// What happens to a submitted run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It starts now.
    Start,
    /// It waits (why, in words); [`RunQueue::ended`] says when it starts.
    Queue(String),
    /// It does not run (why, in words).
    Skip(String),
    /// These runs of its pipeline are to be cancelled; it waits until they have ended.
    CancelRunning(Vec<i64>, String),
}

/// The runs of one server: those in progress and those waiting, per pipeline file.
#[derive(Debug, Clone)]
pub struct RunQueue {
    /// Runs in progress at once, all pipelines together.
    cap: usize,
    running: BTreeMap<String, Vec<i64>>,
    /// Per pipeline its waiting runs in order, with its rule.
    waiting: BTreeMap<String, (Concurrency, VecDeque<i64>)>,
    /// Pipelines with waiting runs, in the order they get their next turn (round robin).
    turns: VecDeque<String>,
}

impl RunQueue {
    pub fn new(cap: usize) -> RunQueue {
        RunQueue {
            cap: cap.max(1),
            running: BTreeMap::new(),
            waiting: BTreeMap::new(),
            turns: VecDeque::new(),
        }
    }

    fn in_progress(&self) -> usize {
        self.running.values().map(Vec::len).sum()
    }

    fn queued(&self) -> usize {
        self.waiting.values().map(|(_, q)| q.len()).sum()
    }

    /// The runs of `file` in progress.
    pub fn running_of(&self, file: &str) -> &[i64] {
        self.running.get(file).map_or(&[], Vec::as_slice)
    }

    /// Whether run `id` waits.
    pub fn is_waiting(&self, id: i64) -> bool {
        self.waiting.values().any(|(_, q)| q.contains(&id))
    }

    /// A new run `id` of `file` under `rule`.
    pub fn submit(&mut self, file: &str, id: i64, rule: Concurrency) -> Decision {
        let mine = self.running_of(file).len();
        let own_full = mine >= rule.max_runs as usize;
        let waiting_already = self.waiting.get(file).is_some_and(|(_, q)| !q.is_empty());
        if !own_full && !waiting_already && self.in_progress() < self.cap {
            self.running.entry(file.to_string()).or_default().push(id);
            return Decision::Start;
        }
        let why = if own_full {
            format!(
                "{mine} run(s) of `{file}` in progress (max_concurrent_runs = {})",
                rule.max_runs
            )
        } else if waiting_already {
            format!("earlier runs of `{file}` are waiting")
        } else {
            format!("{} runs in progress, the server's limit", self.cap)
        };
        if own_full && rule.on_overlap == OnOverlap::Skip {
            return Decision::Skip(format!("skipped: {why} (on_overlap = skip)"));
        }
        if self.queued() >= MAX_QUEUED {
            return Decision::Skip(format!(
                "skipped: {why}, and {MAX_QUEUED} runs wait already"
            ));
        }
        let entry = self
            .waiting
            .entry(file.to_string())
            .or_insert_with(|| (rule, VecDeque::new()));
        entry.0 = rule;
        entry.1.push_back(id);
        if !self.turns.iter().any(|f| f == file) {
            self.turns.push_back(file.to_string());
        }
        if own_full && rule.on_overlap == OnOverlap::CancelRunning {
            let cancel = self.running_of(file).to_vec();
            return Decision::CancelRunning(
                cancel,
                format!(
                    "waits for the runs it cancels to end: {why} (on_overlap = cancel_running)"
                ),
            );
        }
        Decision::Queue(format!("queued: {why}"))
    }

    /// Run `id` ended (or was withdrawn while waiting): the runs that start now, each with its
    /// pipeline, in the order they take their places.
    pub fn ended(&mut self, id: i64) -> Vec<(String, i64)> {
        for runs in self.running.values_mut() {
            runs.retain(|&r| r != id);
        }
        self.running.retain(|_, runs| !runs.is_empty());
        self.withdraw(id);
        self.admit()
    }

    /// Takes a waiting run out of its queue; false when it was not waiting.
    fn withdraw(&mut self, id: i64) -> bool {
        let mut found = false;
        for (_, q) in self.waiting.values_mut() {
            let before = q.len();
            q.retain(|&r| r != id);
            found |= q.len() != before;
        }
        self.waiting.retain(|_, (_, q)| !q.is_empty());
        let waiting = &self.waiting;
        self.turns.retain(|f| waiting.contains_key(f));
        found
    }

    /// Fills free places: pipelines take turns, one run each, while their own rule allows.
    fn admit(&mut self) -> Vec<(String, i64)> {
        let mut started = Vec::new();
        let mut passes_without_start = 0;
        while self.in_progress() < self.cap && passes_without_start < self.turns.len() {
            let Some(file) = self.turns.pop_front() else {
                break;
            };
            let mine = self.running_of(&file).len();
            let Some((rule, queue)) = self.waiting.get_mut(&file) else {
                continue;
            };
            if mine < rule.max_runs as usize {
                if let Some(id) = queue.pop_front() {
                    self.running.entry(file.clone()).or_default().push(id);
                    started.push((file.clone(), id));
                    passes_without_start = 0;
                }
            } else {
                passes_without_start += 1;
            }
            if self.waiting.get(&file).is_some_and(|(_, q)| !q.is_empty()) {
                self.turns.push_back(file);
            } else {
                self.waiting.remove(&file);
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_runs: u32, on_overlap: OnOverlap) -> Concurrency {
        Concurrency {
            max_runs,
            on_overlap,
        }
    }

    #[test]
    fn each_overlap_rule_decides_for_a_run_over_the_pipelines_limit() {
        let cases = [
            (OnOverlap::Queue, "Queue"),
            (OnOverlap::Skip, "Skip"),
            (OnOverlap::CancelRunning, "CancelRunning([1, 2]"),
        ];
        for (on_overlap, want) in cases {
            let mut q = RunQueue::new(16);
            let r = rule(2, on_overlap);
            assert_eq!(q.submit("a.toml", 1, r), Decision::Start);
            assert_eq!(q.submit("a.toml", 2, r), Decision::Start);
            let third = q.submit("a.toml", 3, r);
            assert!(
                format!("{third:?}").starts_with(want),
                "{on_overlap:?}: {third:?}"
            );
            // Another pipeline is not held up.
            assert_eq!(q.submit("b.toml", 4, r), Decision::Start);
            let after = q.ended(1);
            let expect: Vec<(String, i64)> = match on_overlap {
                OnOverlap::Skip => vec![],
                _ => vec![("a.toml".into(), 3)],
            };
            assert_eq!(after, expect, "{on_overlap:?}");
        }
    }

    #[test]
    fn a_withdrawn_run_never_starts_and_a_later_one_keeps_its_order() {
        let mut q = RunQueue::new(16);
        let r = Concurrency::default();
        assert_eq!(q.submit("a.toml", 1, r), Decision::Start);
        assert!(matches!(q.submit("a.toml", 2, r), Decision::Queue(_)));
        assert!(matches!(q.submit("a.toml", 3, r), Decision::Queue(_)));
        assert!(q.is_waiting(2));
        assert_eq!(q.ended(2), vec![], "withdrawn, 1 still runs");
        assert!(!q.is_waiting(2));
        assert_eq!(q.ended(1), vec![("a.toml".to_string(), 3)]);
        assert_eq!(q.ended(3), vec![]);
    }

    #[test]
    fn under_the_servers_cap_pipelines_take_turns() {
        // Cap 2; pipeline a submits 6 runs, b and c one each after them: when places free up,
        // b and c do not wait for all of a's.
        let mut q = RunQueue::new(2);
        let r = rule(10, OnOverlap::Queue);
        let mut ids = 0..;
        let mut next = || ids.next().unwrap();
        let a: Vec<i64> = (0..6).map(|_| next()).collect();
        for &id in &a {
            q.submit("a.toml", id, r);
        }
        let (b, c) = (next(), next());
        assert!(matches!(q.submit("b.toml", b, r), Decision::Queue(_)));
        assert!(matches!(q.submit("c.toml", c, r), Decision::Queue(_)));
        let mut order = Vec::new();
        let mut running = vec![a[0], a[1]];
        while let Some(done) = running.first().copied() {
            running.remove(0);
            for (file, id) in q.ended(done) {
                order.push(file);
                running.push(id);
            }
        }
        assert_eq!(
            order,
            ["a.toml", "b.toml", "c.toml", "a.toml", "a.toml", "a.toml"]
        );
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut q = RunQueue::new(1);
        let r = rule(1, OnOverlap::Queue);
        assert_eq!(q.submit("a.toml", 0, r), Decision::Start);
        for id in 1..=MAX_QUEUED as i64 {
            assert!(matches!(q.submit("a.toml", id, r), Decision::Queue(_)));
        }
        let over = q.submit("a.toml", 5000, r);
        assert!(
            matches!(&over, Decision::Skip(why) if why.contains("wait already")),
            "{over:?}"
        );
    }
}
