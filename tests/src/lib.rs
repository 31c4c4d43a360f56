//! Shared helpers of the end-to-end tests: the `spool` binary, a local Livy endpoint started
//! for a test and stopped with it, and waiting with a limit.

pub mod history;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The `spool` binary built for this test run (`SPOOL_BIN`, else `target/debug/spool`).
pub fn spool_bin() -> PathBuf {
    let bin = std::env::var_os("SPOOL_BIN").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), PathBuf::from);
            target.join("debug").join("spool")
        },
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p spool-server`; scripts/test.sh does)",
        bin.display()
    );
    bin
}

pub fn spool() -> Command {
    let mut c = Command::new(spool_bin());
    c.current_dir(root());
    c
}

/// The report `spool simulate --json FLAGS --data-dir DATA FILE` prints.
pub fn simulate_json(data: &Path, file: &Path, flags: &[String]) -> serde_json::Value {
    let out = spool()
        .args(["simulate", "--json"])
        .args(flags)
        .arg("--data-dir")
        .arg(data)
        .arg(file)
        .output()
        .expect("spool simulate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report as JSON")
}

/// Sends `signal` (`"INT"`, `"TERM"`, `"KILL"`) to process `pid`; whether it was delivered.
pub fn send_signal(pid: &str, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), pid])
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends SIGINT (a clean stop), then SIGKILL if the process has not ended in `grace`.
pub fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    send_signal(&child.id().to_string(), "INT");
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `spool livy-local` on a free port, stopped (drivers included) when dropped.
pub struct LocalLivy {
    child: Child,
    pub url: String,
}

impl LocalLivy {
    pub fn start(work_dir: &Path) -> LocalLivy {
        Self::start_with(work_dir, &[])
    }

    /// With more `livy-local` arguments (`--master spark://…`).
    pub fn start_with(work_dir: &Path, extra: &[&str]) -> LocalLivy {
        let mut child = spool()
            .args(["livy-local", "--port", "0", "--cores", "2", "--work-dir"])
            .arg(work_dir)
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start spool livy-local");
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(i) = line.find("http://127.0.0.1:") {
                        let url: String = line[i..]
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_string();
                        break url;
                    }
                }
                other => panic!("livy-local ended before serving: {other:?}"),
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        LocalLivy { child, url }
    }
}

impl LocalLivy {
    /// The driver processes (one per live session) the endpoint has started.
    pub fn driver_pids(&self) -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-P", &self.child.id().to_string()])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for LocalLivy {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(30));
    }
}

/// Polls `f` until it returns `Some`, or panics after `limit` naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `spool serve` of a copy of `examples/` (history in `DIR/data`), on a free port; stopped when
/// dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT/`
    pub base: String,
    /// The pipelines folder the server edits (a copy of `examples/`).
    pub pipelines: PathBuf,
}

impl Served {
    /// With the built web app (`dist/`); `extra` are more `serve` arguments (`--livy URL`,
    /// `--token T`).
    pub fn start(dir: &Path, extra: &[&str]) -> Served {
        let dist = root().join("dist");
        let mut args = vec!["--web", dist.to_str().expect("a UTF-8 path")];
        args.extend_from_slice(extra);
        Served::with_args(dir, &args)
    }

    /// The API only (no web app needed).
    pub fn api(dir: &Path) -> Served {
        Served::with_args(dir, &[])
    }

    fn with_args(dir: &Path, extra: &[&str]) -> Served {
        let pipelines = dir.join("pipelines");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(root().join("examples"))
            .arg(&pipelines)
            .status()
            .expect("cp");
        assert!(copied.success(), "copy the examples");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = spool()
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--pipelines",
            ])
            .arg(&pipelines)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spool serve");
        let base = format!("http://127.0.0.1:{port}/");
        // Any HTTP answer (401 too, with a token) means the server is up.
        wait_for("the server", Duration::from_secs(30), || {
            match ureq::get(&format!("{base}api/pipelines")).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => Some(()),
                Err(_) => None,
            }
        });
        Served {
            child,
            base,
            pipelines,
        }
    }
}

impl Served {
    /// Sends `signal` (`"TERM"`, `"INT"`) to the server and waits up to `limit` for it to exit.
    pub fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> std::process::ExitStatus {
        let sent = send_signal(&self.child.id().to_string(), signal);
        assert!(sent, "signal {signal} to spool serve");
        wait_for("spool serve to exit", limit, || {
            self.child.try_wait().expect("wait for spool serve")
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(30));
    }
}

/// Clicks the web app's Save and waits for `file` on disk to differ from `before`: its new text.
pub fn save_and_read(b: &webdriver::Browser, file: &Path, before: &str) -> String {
    b.click(&b.find("#save-button", Duration::from_secs(20)));
    wait_for("the file to be saved", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(file).ok()?;
        (text != before).then_some(text)
    })
}
