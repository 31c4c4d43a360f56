//! Resolving secret references (`spool_core::secret`) when an attempt starts: environment
//! variables, files and commands, each allowed or not by the operator (`--secret-sources`).
//! Resolved values go to the driver agent as data and into the run's masker; nothing here logs
//! them, and errors name the reference, never a value.

use spool_core::secret::{self, SecretKind, MAX_BYTES};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A command that has not finished after this long is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The kinds of secret references a process resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSources(BTreeSet<SecretKind>);

impl Default for SecretSources {
    /// Environment variables and files. Commands only when asked for: anyone who can save a
    /// pipeline file (through the API too) could otherwise run a command on this machine.
    fn default() -> Self {
        SecretSources(BTreeSet::from([SecretKind::Env, SecretKind::File]))
    }
}

impl std::str::FromStr for SecretSources {
    type Err = String;

    /// `env,file,command`, or `none`.
    fn from_str(list: &str) -> Result<Self, String> {
        if list.trim() == "none" {
            return Ok(SecretSources(BTreeSet::new()));
        }
        list.split(',')
            .map(|name| {
                SecretKind::parse(name.trim()).ok_or_else(|| {
                    format!("unknown secret source `{name}`: expected env, file, command or none")
                })
            })
            .collect::<Result<_, _>>()
            .map(SecretSources)
    }
}

impl SecretSources {
    fn allows(&self, kind: SecretKind) -> bool {
        self.0.contains(&kind)
    }
}

/// The values of the secret references `texts`, by reference.
pub async fn resolve_all(
    texts: BTreeSet<String>,
    sources: &SecretSources,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for text in texts {
        let value = resolve(&text, sources)
            .await
            .map_err(|why| format!("secret `{text}`: {why}"))?;
        values.insert(text, value);
    }
    Ok(values)
}

/// The value of one reference; `Err` says why there is none, without any value in it.
async fn resolve(text: &str, sources: &SecretSources) -> Result<String, String> {
    let reference = secret::parse(text)?;
    if !sources.allows(reference.kind) {
        return Err(format!(
            "`{}:` secrets are not enabled here (--secret-sources)",
            reference.kind.name()
        ));
    }
    let value = match reference.kind {
        SecretKind::Env => std::env::var(reference.target).map_err(|e| match e {
            std::env::VarError::NotPresent => "the environment variable is not set".to_string(),
            std::env::VarError::NotUnicode(_) => "the environment variable is not text".into(),
        })?,
        SecretKind::File => read_secret_file(reference.target.into()).await?,
        SecretKind::Command => command_output(reference.target, COMMAND_TIMEOUT).await?,
    };
    // A file or a command's output ends with a newline that is not part of the secret.
    let value = value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&value);
    if value.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(value.to_string())
}

async fn read_secret_file(path: std::path::PathBuf) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        // Opened without waiting (a FIFO has no writer) and the type checked on the opened
        // file, so that nothing blocks a start. Symbolic links are followed: mounted secrets
        // (Kubernetes, Docker) are links.
        let file = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| format!("cannot open the file: {}", e.kind()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read the file: {}", e.kind()))?;
        if !meta.is_file() {
            return Err("not a regular file".to_string());
        }
        if meta.len() > MAX_BYTES as u64 {
            return Err(format!("the file is larger than {MAX_BYTES} bytes"));
        }
        let mut text = String::new();
        file.take(MAX_BYTES as u64)
            .read_to_string(&mut text)
            .map_err(|_| "the file is not UTF-8 text".to_string())?;
        Ok(text)
    })
    .await
    .map_err(|e| format!("reading the file stopped: {e}"))?
}

/// What `sh -c command` prints on stdout (at most [`MAX_BYTES`], as text), killed after
/// `timeout`; `Err` with its status and the end of its stderr when it fails.
pub async fn command_output(command: &str, timeout: Duration) -> Result<String, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not run the command: {e}"))?;
    let stdout = child.stdout.take().ok_or("a command without stdout")?;
    let stderr = child.stderr.take().ok_or("a command without stderr")?;
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = stdout.take(MAX_BYTES as u64 + 1);
        let mut stderr = stderr.take(MAX_BYTES as u64);
        let (read_out, read_err, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        read_out.and(read_err).and(status).map(|s| (s, out, err))
    };
    let (status, out, err) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("the command did not finish within {}s", timeout.as_secs()))?
        .map_err(|e| format!("the command failed: {e}"))?;
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let last = err.trim().lines().last().unwrap_or("");
        return Err(format!(
            "the command failed ({status}){}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {}", last.chars().take(300).collect::<String>())
            }
        ));
    }
    if out.len() > MAX_BYTES {
        return Err(format!("the command printed more than {MAX_BYTES} bytes"));
    }
    String::from_utf8(out).map_err(|_| "the command printed something that is not text".into())
}
