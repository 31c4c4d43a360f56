//! `spool serve`: the HTTP API and the web app on one port, with runs on Livy or local Spark.

use crate::api::{app, AppState, WebApp};
use crate::history::{History, Retention, PRUNE_BATCH};
use crate::runs::RunManager;
use crate::scheduler::Scheduler;
use crate::spark_args::SparkArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The folder whose .toml files are the pipelines.
    #[arg(long, default_value = "examples")]
    pub pipelines: PathBuf,
    /// Address to listen on; anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// A bearer token API calls may carry (every call must carry one when any is given):
    /// `SECRET`, `NAME=SECRET` (the run log names who started and cancelled runs), or
    /// `NAME=SECRET:read-only` (can list and watch, not start, cancel, resume or save). A
    /// secret is 1 to 256 letters, digits and `. _ ~ -`. Several allowed (SPOOL_TOKEN:
    /// comma-separated). Prefer SPOOL_TOKEN or --token-file: a command-line value is visible in
    /// `ps`.
    #[arg(
        long,
        env = "SPOOL_TOKEN",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub token: Vec<String>,
    /// Read the tokens from this file: one a line, as --token takes them (`#` starts a
    /// comment line).
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Where run history is kept.
    #[arg(long, default_value = ".spool")]
    pub data_dir: PathBuf,
    /// Serve the web app from this folder (a `scripts/build-web.sh` output) instead of the
    /// copy built into this binary: for working on the web app without rebuilding spool.
    #[arg(long)]
    pub web: Option<PathBuf>,
    /// On SIGINT/SIGTERM, leave running runs' notebooks running (recorded as interrupted, to
    /// be resumed) instead of cancelling them and deleting their sessions.
    #[arg(long)]
    pub keep_runs_on_shutdown: bool,
    /// Keep the newest N finished runs in the history and delete older ones (events and
    /// all), at start and every 10 minutes; runs in progress are always kept.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_runs: Option<u32>,
    /// Delete finished runs that ended more than D days ago (with --keep-runs too: a run
    /// goes when either says so).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,
    #[command(flatten)]
    pub spark: SparkArgs,
}

/// How long a stopping server waits for its runs' cancels to be confirmed before it deletes
/// their sessions anyway.
const SHUTDOWN_CANCEL_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the history's retention deletes what it no longer keeps.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Applies the retention now and every [`RETENTION_EVERY`]: one batch of runs per
/// transaction on the blocking pool, so that runs recording events wait for one batch at
/// most.
async fn keep_history(history: Arc<History>, retention: Retention) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        every.tick().await;
        let mut deleted = 0;
        loop {
            let h = history.clone();
            let batch =
                tokio::task::spawn_blocking(move || h.prune(retention, crate::runs::now_ms()))
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|r| r);
            match batch {
                Ok(n) => {
                    deleted += n;
                    if n < PRUNE_BATCH as usize {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!("history retention: {e:#}");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "history retention deleted old finished runs");
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (a service manager).
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Threads for blocking work (SQLite, files, planning) at most. The history is one SQLite
/// connection behind a lock, so more threads only wait for it; and each thread costs memory
/// that glibc's allocator keeps (a cache per thread, arenas shared by more threads): with
/// tokio's default of 512, a hundred live event streams kept ~160 threads and the process's
/// RSS grew with every run while its live heap stayed under 5 MB (docs/operations.md).
const MAX_BLOCKING_THREADS: usize = 16;

/// `spool serve`'s runtime: tokio's multi-threaded one, with [`MAX_BLOCKING_THREADS`].
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
}

pub fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let tokens = crate::api::load_tokens(&args.token, args.token_file.as_deref())?;
    if !args.bind.ip().is_loopback() && tokens.is_empty() {
        anyhow::bail!(
            "--bind {} is not a loopback address: give a token (SPOOL_TOKEN or --token-file) so that only holders of it can use the API",
            args.bind
        );
    }
    let pipelines_dir = args
        .pipelines
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("pipelines folder `{}`: {e}", args.pipelines.display()))?;
    let web = match &args.web {
        Some(w) => {
            let dir = w
                .canonicalize()
                .map_err(|e| anyhow::anyhow!("web folder `{}`: {e}", w.display()))?;
            anyhow::ensure!(
                dir.join("index.html").is_file(),
                "web folder `{}` has no index.html: build it with scripts/build-web.sh",
                w.display()
            );
            WebApp::Folder(dir)
        }
        None => WebApp::embedded(),
    };
    eprintln!("{}", web.describe());
    let runtime = runtime()?;
    runtime.block_on(async move {
        let history = Arc::new(History::open(&args.data_dir)?);
        let interrupted = history.mark_interrupted(crate::runs::now_ms())?;
        for (id, reason) in history.quarantined()? {
            eprintln!("run {id} is set aside, its history does not decode: {reason}");
        }
        if !interrupted.is_empty() {
            eprintln!(
                "runs interrupted by an earlier stop (resume them from the UI): {interrupted:?}"
            );
        }
        let (spark, local) = args.spark.connect(&args.data_dir).await?;
        if let Some(l) = &local {
            eprintln!("Spark: local PySpark behind {}", l.base_url());
        }
        let retention = Retention {
            keep_runs: args.keep_runs,
            keep_days: args.keep_days,
        };
        if retention.is_set() {
            tokio::spawn(keep_history(history.clone(), retention));
        }
        let runs = RunManager::new(history.clone(), pipelines_dir.clone(), spark);
        // Sessions the interrupted runs left behind are deleted in the background.
        let reaper = runs.clone();
        tokio::spawn(async move { reaper.reap(&interrupted).await });
        let state = Arc::new(AppState {
            pipelines_dir: pipelines_dir.clone(),
            web,
            tokens,
            history: history.clone(),
            runs: runs.clone(),
            limits: Default::default(),
            schedules_changed: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        let address = listener.local_addr()?;
        eprintln!("Spool on http://{address} (Ctrl-C stops it)");
        runs.set_web_address(format!("http://{address}/"));
        // Runs are stopped first, whatever open connections (live streams) do; the server
        // then gets a moment to finish its answers.
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let scheduler = Arc::new(Scheduler::new(history.clone(), runs.clone(), pipelines_dir));
        let scheduling =
            tokio::spawn(scheduler.run(state.schedules_changed.clone(), stop_rx.clone()));
        let mut server = tokio::spawn(crate::api::serve(
            listener,
            app(state),
            crate::api::HEADER_READ_TIMEOUT,
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
        ));
        tokio::select! {
            served = &mut server => served??,
            _ = stop_signal() => {}
        }
        let _ = stop_tx.send(true);
        // No scheduled run starts once the runs are being stopped.
        let _ = scheduling.await;
        let keep = args.keep_runs_on_shutdown;
        eprintln!(
            "stopping: {} the runs in progress",
            if keep {
                "leaving (to resume)"
            } else {
                "cancelling"
            }
        );
        runs.shutdown(keep, SHUTDOWN_CANCEL_LIMIT).await;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        if let Some(l) = local {
            l.shutdown().await;
        }
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many event streams read the history at once: their reads queue for a bounded set of
    /// threads instead of each getting one.
    #[test]
    fn blocking_work_runs_on_a_bounded_set_of_threads() {
        let runtime = runtime().expect("runtime");
        let threads = runtime.block_on(async {
            let reads: Vec<_> = (0..200)
                .map(|_| {
                    tokio::task::spawn_blocking(|| {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        std::thread::current().id()
                    })
                })
                .collect();
            let mut threads = std::collections::HashSet::new();
            for read in reads {
                threads.insert(read.await.expect("read"));
            }
            threads
        });
        // Not one per read (tokio's default would start about 200 here).
        assert!(
            threads.len() <= MAX_BLOCKING_THREADS && threads.len() <= 32,
            "{} threads",
            threads.len()
        );
    }
}
