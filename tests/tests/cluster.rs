//! Spool on a real multi-process Spark cluster: a standalone master and workers started by
//! scripts/spark-cluster.sh (each its own JVM, 1 core and 1g each, on 127.0.0.1), drivers in
//! client mode behind `spool livy-local --master`. Executors come and go here as on a real
//! pool: workers added mid-run, a worker JVM SIGKILLed under running tasks, dynamic allocation.
//!
//! One test runs the scenarios one after the other on one cluster (a cluster is four or more
//! JVMs; the CI machine has 2 cores): `cargo test -p spool-tests --test cluster -- --ignored`.
//! On a loaded 2-core machine: cluster start about 30 s, each Spark session start 35 to 85 s,
//! then the runs. Its JVMs leave a core idle about half of that time, so `scripts/test.sh` runs
//! it beside the other tests rather than among them (cargo runs test binaries one at a time):
//! it is ignored by a plain `cargo test`, and test.sh asks for it.

use serde_json::Value;
use spool_tests::{root, spool, wait_for, LocalLivy};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A standalone cluster, stopped (every JVM) when dropped.
struct Cluster {
    dir: PathBuf,
    url: String,
}

fn cluster_script(args: &[&str], dir: &Path) -> Output {
    Command::new(root().join("scripts/spark-cluster.sh"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/spark-cluster.sh")
}

impl Cluster {
    fn start(dir: &Path, workers: u32) -> Cluster {
        let out = cluster_script(
            &[
                "start",
                "--workers",
                &workers.to_string(),
                "--cores",
                "1",
                "--memory",
                "1g",
                "--port",
                "0",
            ],
            dir,
        );
        assert!(out.status.success(), "the cluster did not start");
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(url.starts_with("spark://127.0.0.1:"), "{url}");
        Cluster {
            dir: dir.to_path_buf(),
            url,
        }
    }

    fn add_worker(&self) {
        let out = cluster_script(&["add-worker", "--cores", "1", "--memory", "1g"], &self.dir);
        assert!(out.status.success(), "the worker did not start");
    }

    /// SIGKILLs worker `n`'s JVM; its executors notice and exit (Spark's WorkerWatcher).
    fn kill_worker(&self, n: u32) {
        let pid_file = self.dir.join(format!("worker-{n}.pid"));
        let pid = std::fs::read_to_string(&pid_file).expect("worker pid file");
        let killed = spool_tests::send_signal(pid.trim(), "KILL");
        assert!(killed, "worker {n} (pid {pid}) was not running");
        std::fs::remove_file(pid_file).expect("forget the dead worker");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        cluster_script(&["stop"], &self.dir);
    }
}

/// `spool run` in the background, with `--json` to a file.
fn start_run(file: &Path, data: &Path, spark: &[&str]) -> Child {
    spool()
        .arg("run")
        .arg(file)
        .args(spark)
        .arg("--data-dir")
        .arg(data)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spool run")
}

fn finish(run: Child) -> (i32, Value, String) {
    let out = run.wait_with_output().expect("spool run ends");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let run: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no run JSON ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), run, stderr)
}

/// The run log of run 1 of `data` so far (the history is readable while the run writes it).
fn events(data: &Path) -> Vec<Value> {
    let out = spool()
        .args(["show", "1", "--json", "--data-dir"])
        .arg(data)
        .output()
        .expect("spool show");
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| {
            v["events"]
                .as_array()
                .map(|e| e.iter().map(|e| e["event"].clone()).collect())
        })
        .unwrap_or_default()
}

/// Every capacity the run recorded, in order.
fn capacities(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["type"] == "session_changed")
        .filter_map(|e| e["capacity"].as_u64())
        .collect()
}

fn started(events: &[Value], task: &str) -> bool {
    events
        .iter()
        .any(|e| e["type"] == "task_started" && e["task"] == task)
}

/// Replays the log: each start must fit in the capacity last recorded (every notebook of these
/// pipelines holds one slot; a capacity of 0 admits one, as the scheduler clamps it to 1).
fn assert_admission_within_capacity(events: &[Value]) {
    let mut capacity = 0u64;
    let mut running = 0u64;
    for e in events {
        match e["type"].as_str() {
            Some("session_changed") => {
                if let Some(c) = e["capacity"].as_u64() {
                    capacity = c;
                }
            }
            Some("task_started") => {
                running += 1;
                assert!(
                    running <= capacity.max(1),
                    "{} started with {running} notebooks running on {capacity} slots: {events:#?}",
                    e["task"]
                );
            }
            Some("task_finished") => running -= 1,
            _ => {}
        }
    }
}

/// The three scenarios share one cluster (starting one costs about 30 s on a loaded 2-core
/// machine), in this order: each leaves it as the next expects (two live workers after the
/// first). Each has its own run history.
#[test]
#[ignore = "scripts/test.sh runs it beside the other tests: cargo test -p spool-tests --test cluster -- --ignored"]
fn scenarios_on_a_two_worker_cluster() {
    assert!(
        std::env::var_os("SPOOL_PYTHON").is_some() || root().join(".venv/bin/python").exists(),
        "needs PySpark: run scripts/python-env.sh or set SPOOL_PYTHON"
    );
    let tmp = tempfile::tempdir().unwrap();
    // One worker of the two executors the example's pool asks for.
    let cluster = Cluster::start(&tmp.path().join("cluster"), 1);
    the_example_runs_and_capacity_follows_a_worker_added_mid_run(&cluster, tmp.path());
    let livy = LocalLivy::start_with(&tmp.path().join("livy"), &["--master", &cluster.url]);
    a_worker_killed_under_running_tasks_is_survived_and_admission_follows_capacity(
        &cluster,
        &livy,
        &tmp.path().join("killed"),
    );
    dynamic_allocation_grows_and_shrinks_the_pool_and_admission_follows(
        &livy,
        &tmp.path().join("dynamic"),
    );
}

/// `spool run --master` of the example, begun on one worker; a second worker joins mid-run.
fn the_example_runs_and_capacity_follows_a_worker_added_mid_run(cluster: &Cluster, tmp: &Path) {
    let examples = tmp.join("examples");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(root().join("examples"))
        .arg(&examples)
        .status()
        .unwrap();
    assert!(copied.success());
    // The example's pool is one 2-core executor; the test cluster's workers have one core.
    let file = examples.join("daily_sales.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replacen(
        "executors = 1\nexecutor_cores = 2",
        "executors = 2\nexecutor_cores = 1",
        1,
    );
    assert!(text.contains("executors = 2\nexecutor_cores = 1"));
    std::fs::write(&file, text).unwrap();

    let data = &tmp.join("example");
    let run = start_run(&file, data, &["--master", &cluster.url]);
    wait_for(
        "the session to report one executor",
        Duration::from_secs(180),
        || capacities(&events(data)).contains(&1).then_some(()),
    );
    cluster.add_worker();
    let (code, run, stderr) = finish(run);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["status"], "succeeded");
    let log = events(data);
    let seen = capacities(&log);
    assert_eq!(seen.last(), Some(&2), "capacities {seen:?}");
    assert!(
        log.iter()
            .any(|e| e["state"] == "resized" && e["capacity"] == 2),
        "the second executor is in the run log: {log:#?}"
    );
}

/// Worker 1's JVM is SIGKILLed while `spread`'s tasks run on both executors; a new worker
/// replaces it.
fn a_worker_killed_under_running_tasks_is_survived_and_admission_follows_capacity(
    cluster: &Cluster,
    livy: &LocalLivy,
    data: &Path,
) {
    let file = root().join("tests/fixtures/cluster/spread.toml");
    let run = start_run(&file, data, &["--livy", &livy.url]);

    wait_for("both executors", Duration::from_secs(180), || {
        capacities(&events(data)).contains(&2).then_some(())
    });
    wait_for("`spread` to start", Duration::from_secs(120), || {
        started(&events(data), "spread").then_some(())
    });
    // Its ten 4-second tasks keep both executors busy for about 20 s.
    std::thread::sleep(Duration::from_secs(6));
    cluster.kill_worker(1);
    wait_for(
        "the lost executor in the run log",
        Duration::from_secs(90),
        || capacities(&events(data)).ends_with(&[1]).then_some(()),
    );
    cluster.add_worker();

    let (code, run, stderr) = finish(run);
    assert_eq!(code, 0, "{stderr}");
    for task in ["spread", "side", "after"] {
        assert_eq!(
            run["tasks"][task]["attempts"][0]["outcome"], "succeeded",
            "{task} succeeded on its first attempt: Spark rescheduled the lost tasks"
        );
    }
    assert_eq!(run["tasks"]["spread"]["attempts"][0]["exit_value"], "45");
    let log = events(data);
    let seen = capacities(&log);
    let drop = seen
        .windows(2)
        .position(|w| w == [2, 1])
        .expect("a drop from 2 to 1");
    assert!(seen[drop..].contains(&2), "and a recovery to 2: {seen:?}");
    assert_admission_within_capacity(&log);
}

fn dynamic_allocation_grows_and_shrinks_the_pool_and_admission_follows(
    livy: &LocalLivy,
    data: &Path,
) {
    let file = root().join("tests/fixtures/cluster/dynamic.toml");
    let (code, run, stderr) = finish(start_run(&file, data, &["--livy", &livy.url]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["status"], "succeeded");
    let log = events(data);
    let seen = capacities(&log);
    let grown = seen
        .iter()
        .position(|c| *c == 2)
        .unwrap_or_else(|| panic!("grew to 2: {seen:?}"));
    assert!(
        seen[grown..].iter().any(|c| *c < 2),
        "shrank after: {seen:?}"
    );
    assert_admission_within_capacity(&log);
}
