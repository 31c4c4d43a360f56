//! `spool-bench history`, for `scripts/bench-history.sh`: a history of many runs, and how long
//! listing the newest runs and starting the server take on it, beside the previous approach
//! (every listed run folded from its events; the start folding the newest 1,000 runs to find
//! unfinished ones).

use rusqlite::{params, Connection};
use serde_json::json;
use spool_core::runlog::{AttemptOutcome, FinalReason, RunEvent, RunStatus};
use spool_core::sched::Final;
use spool_server::history::{History, RunFilter};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the start of the previous approach folded to find interrupted ones.
const PREVIOUS_START_FOLDS: i64 = 1_000;
/// Runs `GET /api/runs` listed (folded) before pages.
const PREVIOUS_LISTED: i64 = 200;
/// Runs left unfinished by a process that is gone: the start marks them interrupted.
const UNFINISHED: i64 = 10;
/// Timings whose median is reported.
const REPEAT: usize = 21;
/// How long a server may take to listen before the bench gives up.
const START_LIMIT: Duration = Duration::from_secs(120);

#[derive(clap::Args)]
pub struct Args {
    /// Runs in the history.
    #[arg(long, default_value_t = 100_000)]
    pub runs: i64,
    /// Notebooks per run (each started, finished and settled).
    #[arg(long, default_value_t = 5)]
    pub notebooks: usize,
    /// An empty folder for the history (and the servers' copies of it).
    #[arg(long)]
    pub work: PathBuf,
    /// This build's `spool`: also time `spool serve` from start to listening, and its list.
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// A `spool` from before run summaries: the same, on a copy of the history as it wrote it.
    #[arg(long)]
    pub baseline_spool: Option<PathBuf>,
}

/// One line of the table: what, this build, the previous approach (when measured).
struct Row(&'static str, Duration, Option<Duration>);

pub fn run(args: Args) -> anyhow::Result<u8> {
    anyhow::ensure!(args.runs > UNFINISHED, "--runs must be over {UNFINISHED}");
    let dir = args.work.join("history");
    let filled = Instant::now();
    fill_as_before_summaries(&dir, args.runs, args.notebooks)?;
    let db_bytes = std::fs::metadata(dir.join("runs.db"))?.len();
    eprintln!(
        "filled {} runs in {:.1}s ({:.0} MB)",
        args.runs,
        filled.elapsed().as_secs_f64(),
        db_bytes as f64 / 1e6
    );
    let mut rows = Vec::new();
    let mut baseline_serve = None;
    if let Some(old) = &args.baseline_spool {
        let copy = args.work.join("baseline");
        std::fs::create_dir_all(&copy)?;
        std::fs::copy(dir.join("runs.db"), copy.join("runs.db"))?;
        baseline_serve = Some(time_serve(old, &copy, &args.work, "/api/runs")?);
        std::fs::remove_dir_all(&copy)?;
    }

    let opened = Instant::now();
    drop(History::open(&dir)?);
    let backfill = opened.elapsed();

    let started = Instant::now();
    let history = History::open(&dir)?;
    let marked = history.mark_interrupted(spool_server::runs::now_ms())?;
    let start = started.elapsed();
    anyhow::ensure!(
        marked.len() as i64 == UNFINISHED,
        "the start marked {} runs interrupted, not {UNFINISHED}",
        marked.len()
    );
    let previous_start = time_once(|| fold_newest(&history, args.runs, PREVIOUS_START_FOLDS))?;
    rows.push(Row(
        "start: find unfinished runs",
        start,
        Some(previous_start),
    ));

    let newest = RunFilter::default();
    let list = median(|| Ok(history.list(&newest)?.len()))?;
    let previous_list = median(|| fold_newest(&history, args.runs, newest.limit.into()))?;
    rows.push(Row("list the newest 50", list, Some(previous_list)));
    let failed = RunFilter {
        pipeline: Some("nightly.toml".into()),
        statuses: vec![RunStatus::Failed],
        ..RunFilter::default()
    };
    let filtered = median(|| Ok(history.list(&failed)?.len()))?;
    rows.push(Row("list 50 of a pipeline, failed", filtered, None));
    drop(history);

    if let Some(spool) = &args.spool {
        let (listening, answered) = time_serve(spool, &dir, &args.work, "/api/runs?limit=50")?;
        let (old_listening, old_answered) = baseline_serve.unzip();
        rows.push(Row(
            "spool serve: start to listening",
            listening,
            old_listening,
        ));
        rows.push(Row("spool serve: GET /api/runs", answered, old_answered));
    }
    rows.push(Row("one-time back-fill of summaries", backfill, None));

    println!(
        "history of {} runs ({} notebooks each, runs.db {:.0} MB); medians of {REPEAT} where listed",
        args.runs,
        args.notebooks,
        db_bytes as f64 / 1e6
    );
    let head = format!(
        "{:<34} {:>12} {:>18} {:>8}",
        "measure", "summaries", "previous (folds)", "ratio"
    );
    println!("{head}\n{}", "-".repeat(head.len()));
    for Row(what, now, before) in rows {
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        let (before, ratio) = match before {
            Some(b) => (
                ms(b),
                format!("{:.0}x", b.as_secs_f64() / now.as_secs_f64().max(1e-9)),
            ),
            None => ("-".into(), "-".into()),
        };
        println!("{what:<34} {:>12} {before:>18} {ratio:>8}", ms(now));
    }
    println!(
        "previous: GET /api/runs listed the newest {PREVIOUS_LISTED} runs, each folded from its events"
    );
    Ok(0)
}

/// A history as a build before run summaries wrote it: `runs` and `events` only (this build's
/// schema, its summaries dropped), filled in one transaction. Every 7th run failed; the
/// newest [`UNFINISHED`] were left running by a process that is gone.
fn fill_as_before_summaries(dir: &Path, runs: i64, notebooks: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        !dir.join("runs.db").exists(),
        "{} already has a history",
        dir.display()
    );
    drop(History::open(dir)?);
    let mut conn = Connection::open(dir.join("runs.db"))?;
    conn.execute_batch("DROP TABLE run_summaries; PRAGMA user_version = 0;")?;
    let tasks: Vec<String> = (0..notebooks).map(|i| format!("n{i}")).collect();
    let plan = json!({
        "name": "nightly",
        "tasks": tasks.iter().map(|t| json!({"id": t, "path": format!("nb/{t}.py"), "params": {"run_date": "2026-11-30"}})).collect::<Vec<_>>(),
    });
    let tx = conn.transaction()?;
    {
        let mut run_row =
            tx.prepare("INSERT INTO runs (id, created_ms, owner_pid) VALUES (?1, ?2, 0)")?;
        let mut event_row =
            tx.prepare("INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, ?2, ?3, ?4)")?;
        let base = 1_700_000_000_000i64;
        for id in 1..=runs {
            let at = base + id * 60_000;
            run_row.execute(params![id, at])?;
            let failed = id % 7 == 0;
            let mut log = vec![RunEvent::RunStarted {
                pipeline: "nightly".into(),
                file: "nightly.toml".into(),
                params: Default::default(),
                resumed_from: None,
                plan: plan.clone(),
                trigger: None,
                started_by: None,
            }];
            let last = tasks.len() - 1;
            for (i, task) in tasks.iter().enumerate() {
                let ok = !(failed && i == last);
                log.push(RunEvent::TaskStarted {
                    task: task.clone(),
                    attempt: 1,
                });
                log.push(RunEvent::TaskFinished {
                    task: task.clone(),
                    attempt: 1,
                    outcome: match ok {
                        true => AttemptOutcome::Succeeded,
                        false => AttemptOutcome::Failed,
                    },
                    error: None,
                    output: Some(format!("{task}: 1234 rows written\n")),
                    exit_value: None,
                    metrics: None,
                });
                log.push(RunEvent::TaskSettled {
                    task: task.clone(),
                    state: match ok {
                        true => Final::Succeeded,
                        false => Final::Failed,
                    },
                    reason: FinalReason::Attempt,
                });
            }
            if id <= runs - UNFINISHED {
                log.push(RunEvent::RunFinished {
                    status: match failed {
                        true => RunStatus::Failed,
                        false => RunStatus::Succeeded,
                    },
                });
            }
            for (seq, event) in log.iter().enumerate() {
                let seq = seq as i64;
                event_row.execute(params![
                    id,
                    seq,
                    at + seq * 1000,
                    serde_json::to_string(event)?
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The previous approach's work: the newest `count` runs, each folded from its events.
fn fold_newest(history: &History, newest: i64, count: i64) -> anyhow::Result<usize> {
    let mut folded = 0;
    for id in (newest - count + 1..=newest).rev() {
        folded += usize::from(history.run(id)?.is_some());
    }
    Ok(folded)
}

fn time_once(f: impl FnOnce() -> anyhow::Result<usize>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    std::hint::black_box(f()?);
    Ok(t.elapsed())
}

fn median(mut f: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<Duration> {
    let mut times = (0..REPEAT)
        .map(|_| time_once(&mut f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    times.sort();
    Ok(times[REPEAT / 2])
}

/// Starts `spool serve` on `data_dir` and times it from start to listening, then `path`'s
/// answer (median). Its Livy is never contacted.
fn time_serve(
    spool: &Path,
    data_dir: &Path,
    work: &Path,
    path: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let pipelines = work.join("pipelines");
    std::fs::create_dir_all(&pipelines)?;
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let started = Instant::now();
    let child = Command::new(spool)
        .arg("serve")
        .arg("--pipelines")
        .arg(&pipelines)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--bind", &addr.to_string(), "--livy", "http://127.0.0.1:9"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut server = Server(child);
    while TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            server.0.try_wait()?.is_none(),
            "spool serve exited before listening"
        );
        anyhow::ensure!(
            started.elapsed() < START_LIMIT,
            "spool serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let listening = started.elapsed();
    let answered = median(|| get(addr, path))?;
    server.stop();
    Ok((listening, answered))
}

/// `GET path` over HTTP/1.1; the length of the answer (which must be a 200).
fn get(addr: SocketAddr, path: &str) -> anyhow::Result<usize> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    anyhow::ensure!(
        answer.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    Ok(answer.len())
}

/// A server process, killed (and waited for) when stopped or dropped: it runs nothing.
struct Server(Child);

impl Server {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
