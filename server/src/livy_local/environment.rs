//! Finding the Python that runs the drivers, and checking that it has PySpark and that Java 17+
//! is there, so that a missing piece is one clear message at start-up instead of a dead session.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
const MIN_JAVA: u32 = 17;

/// The interpreter to use: the one given, else `$SPOOL_PYTHON`, else the project's `.venv`
/// (searched upwards from the current folder and from the executable's folder), else `python3`.
pub fn find_python(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("SPOOL_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    ];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join(".venv/bin/python");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("python3")
}

/// Checks PySpark and Java together; one error listing every missing piece and how to fix it.
pub async fn check(python: &Path) -> anyhow::Result<()> {
    let (pyspark, java) = tokio::join!(check_pyspark(python), check_java());
    let problems: Vec<String> = [pyspark, java]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot start local Spark:\n{}\nTo fix: run scripts/python-env.sh (it creates .venv with PySpark from \
         requirements.txt) or point --python / SPOOL_PYTHON at a Python that has PySpark, and \
         install Java {MIN_JAVA} (Debian: apt-get install openjdk-17-jre-headless) with `java` on PATH \
         or JAVA_HOME set.",
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

async fn output_of(command: &mut Command) -> Result<std::process::Output, String> {
    let run = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn check_pyspark(python: &Path) -> Result<(), String> {
    let output = output_of(
        Command::new(python)
            .arg("-c")
            .arg("import pyspark; print(pyspark.__version__)"),
    )
    .await
    .map_err(|e| format!("could not run Python `{}`: {e}", python.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or("").trim();
    Err(format!(
        "PySpark is not importable by `{}` ({last})",
        python.display()
    ))
}

async fn check_java() -> Result<(), String> {
    let java = std::env::var_os("JAVA_HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join("bin/java"))
        .unwrap_or_else(|| PathBuf::from("java"));
    let output = output_of(Command::new(&java).arg("-version"))
        .await
        .map_err(|e| format!("Java was not found (`{} -version`: {e})", java.display()))?;
    // `java -version` writes to stderr: `openjdk version "17.0.15" 2025-04-15`.
    let text = String::from_utf8_lossy(&output.stderr);
    match java_major(&text) {
        Some(major) if major >= MIN_JAVA => Ok(()),
        Some(major) => Err(format!(
            "Java {major} found at `{}`; Spark needs Java {MIN_JAVA} or newer",
            java.display()
        )),
        None => Err(format!(
            "`{} -version` did not say a version: {}",
            java.display(),
            text.trim()
        )),
    }
}

/// The major version in `java -version` output (`"1.8.0_392"` is 8). The JVM may print other
/// lines first (`Picked up JAVA_TOOL_OPTIONS: -Dx="y"`), so the version line is looked for.
fn java_major(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.contains(" version \""))?;
    let quoted = line.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_are_read_from_both_schemes() {
        let cases = [
            ("openjdk version \"17.0.15\" 2025-04-15", Some(17)),
            ("java version \"1.8.0_392\"", Some(8)),
            ("openjdk version \"21\" 2023-09-19", Some(21)),
            ("openjdk version \"22-ea\" 2024-03-19", Some(22)),
            (
                "Picked up JAVA_TOOL_OPTIONS: -Dname=\"a b\"\nopenjdk version \"17.0.15\" 2025-04-15",
                Some(17),
            ),
            ("no version here", None),
        ];
        for (text, expected) in cases {
            assert_eq!(java_major(text), expected, "{text}");
        }
    }

    #[tokio::test]
    async fn a_python_without_pyspark_is_one_clear_message() {
        let error = check(Path::new("/nonexistent/python"))
            .await
            .expect_err("no such interpreter");
        let message = error.to_string();
        assert!(message.contains("/nonexistent/python"), "{message}");
        assert!(message.contains("scripts/python-env.sh"), "{message}");
    }
}
