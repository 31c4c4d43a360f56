//! One dry run everywhere (ARCHITECTURE.md, `dry_run.rs`: "they agree to the digit"): the
//! example pipeline with the same options — a pool size, seeded random variation and failures
//! (so the libm draws are really compared), a sweep with a deadline, durations calibrated from
//! runs in the history — through `spool simulate --json` (native), `POST
//! /api/pipelines/{file}/simulate` (native, in the server) and the WebAssembly build (the
//! JavaScript API under Node, simulating with the calibration `GET …/calibration` answers, as the
//! browser does) gives the same report: every number the same f64, every string and list equal.

use serde_json::{json, Value};
use spool_tests::history::{write_slowing_runs, CAPACITY_SLOTS, SESSION_STARTUP_MS};
use spool_tests::{root, simulate_json, spool, Served};
use std::path::Path;
use std::process::Command;

/// Simulates with the Node package of spool-js: argv = package, pipelines folder, root file,
/// options JSON, calibration JSON (or `null`); prints the report as JSON.
const NODE_SIMULATE: &str = r#"
const [pkg, dir, file, options, calibration] = process.argv.slice(1);
const spool = require(pkg);
const fs = require('fs'), path = require('path');
const files = {};
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else files[path.relative(dir, p)] = fs.readFileSync(p, 'utf8');
  }
};
walk(dir);
const out = spool.simulate(files[file], files, JSON.parse(options), file, JSON.parse(calibration));
if (!out.report) throw new Error(JSON.stringify(out));
process.stdout.write(JSON.stringify(out.report));
"#;

/// `Value` with every number as an f64: JavaScript writes `20` where Rust writes `20.0`, the
/// same number. Anything else stays as it is.
fn numbers_as_f64(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().expect("a finite number")),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, numbers_as_f64(v)))
            .collect(),
        other => other,
    }
}

/// The example's notebook ids, as `spool plan --json` lists them.
fn notebook_ids(file: &Path) -> Vec<String> {
    let out = spool()
        .args(["plan", "--json"])
        .arg(file)
        .output()
        .expect("spool plan");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    plan["plan"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["kind"] == "notebook")
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

fn wasm_report(pipelines: &Path, options: &Value, calibration: &Value) -> Value {
    let pkg = root().join("js/pkg/node/spool.js");
    assert!(
        pkg.is_file(),
        "{} is missing: build it first (scripts/build-js.sh; scripts/test.sh does)",
        pkg.display()
    );
    let out = Command::new("node")
        .arg("-e")
        .arg(NODE_SIMULATE)
        .arg(&pkg)
        .arg(pipelines)
        .arg("daily_sales.toml")
        .arg(options.to_string())
        .arg(calibration.to_string())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the JavaScript API's JSON")
}

#[test]
fn cli_api_and_wasm_report_the_same_dry_run_to_the_digit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let example = root().join("examples/daily_sales.toml");
    let notebooks = notebook_ids(&example);
    assert!(notebooks.len() > 5, "{notebooks:?}");
    let runs = write_slowing_runs(&data, &notebooks, 3);

    let served = Served::api(tmp.path());
    let cases = [
        json!({
            "executors": 3, "seed": 7, "variation": 0.6, "failure_rate": 0.2,
            "sweep": 6, "deadline_secs": 3600, "durations_from": runs[0]
        }),
        json!({
            "executor_cores": 2, "policy": "fifo", "seed": 12345678901_u64, "variation": 1.3,
            "failure_rate": 0.25, "node_startup_secs": 0, "durations_from": "p90",
            "history_runs": 3
        }),
        json!({"seed": 3, "variation": 0.2, "failure_rate": 0.3, "price_per_node_hour": 2.5}),
    ];
    for options in cases {
        // The same options as CLI flags.
        let flags: Vec<String> = options
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(k, v)| {
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                [format!("--{}", k.replace('_', "-")), value]
            })
            .collect();
        let cli = simulate_json(&data, &example, &flags);
        let api: Value = ureq::post(&format!(
            "{}api/pipelines/daily_sales.toml/simulate",
            served.base
        ))
        .set("origin", served.base.trim_end_matches('/'))
        .send_json(&options)
        .expect("API simulate")
        .into_json()
        .expect("API JSON");
        let calibration = match options.get("durations_from") {
            Some(from) => {
                let from = from
                    .as_str()
                    .map_or_else(|| from.to_string(), str::to_string);
                let runs = options
                    .get("history_runs")
                    .map_or(20, |n| n.as_u64().unwrap_or(0));
                ureq::get(&format!(
                    "{}api/pipelines/daily_sales.toml/calibration?durations_from={from}&history_runs={runs}",
                    served.base
                ))
                .call()
                .expect("API calibration")
                .into_json()
                .expect("calibration JSON")
            }
            None => Value::Null,
        };
        let wasm = wasm_report(&served.pipelines, &options, &calibration);

        // The draws really happened: attempts failed and were retried, durations varied.
        let tasks = cli["tasks"].as_array().cloned().unwrap_or_default();
        assert!(
            tasks.iter().any(|t| t["outcome"] == "failed"),
            "{options}: no attempt failed"
        );
        if let Some(from) = options.get("durations_from") {
            // And the calibration is the history's: its runs, capacity, start-up, latency.
            let c = &cli["calibration"];
            let read = if from == "p90" {
                json!([runs[2], runs[1], runs[0]])
            } else {
                json!([runs[0]])
            };
            assert_eq!(c["runs"], read, "{options}");
            assert_eq!(c["live_capacity_slots"], CAPACITY_SLOTS, "{options}");
            assert_eq!(
                c["session_startup_secs"].as_f64(),
                Some(SESSION_STARTUP_MS as f64 / 1000.0)
            );
            assert_eq!(c["dispatch_latency_secs"].as_f64(), Some(0.4));
        }
        assert_eq!(api, cli, "{options}: the API's report is the CLI's");
        assert_eq!(
            numbers_as_f64(wasm),
            numbers_as_f64(cli),
            "{options}: the WebAssembly report is the CLI's"
        );
    }
}
