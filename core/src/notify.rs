//! `[[notify]]`: who is told when a run ends (or runs long), and what they are sent. Pure: the
//! server delivers the bodies built here.
//!
//! ```toml
//! [[notify]]
//! on = ["failed", "long_running"]
//! webhook = "https://hooks.slack.com/services/…"
//! format = "slack"            # "json" (default) | "slack" | "teams"
//! long_running_secs = 3600    # needed with "long_running"
//! ```

use crate::runlog::{RunRecord, RunStatus};
use serde::{Deserialize, Serialize};

/// At most this many `[[notify]]` entries per pipeline.
pub const MAX_NOTIFY: usize = 20;
/// A webhook URL is at most this long.
pub const MAX_WEBHOOK_LEN: usize = 2048;
/// A notification names at most this many failed notebooks, each error cut to this length.
pub const MAX_FAILED_LISTED: usize = 20;
pub const MAX_ERROR_CHARS: usize = 500;

/// When a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    Failed,
    Succeeded,
    Cancelled,
    /// The run still runs `long_running_secs` after it started (sent once).
    LongRunning,
}

impl NotifyOn {
    pub const ALL: [NotifyOn; 4] = [
        NotifyOn::Failed,
        NotifyOn::Succeeded,
        NotifyOn::Cancelled,
        NotifyOn::LongRunning,
    ];
    pub const NAMES: [&'static str; 4] = ["failed", "succeeded", "cancelled", "long_running"];

    /// The event's name, as `on` and the run log write it.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The end a finished run's status is, if it is one a notification can be on.
    pub fn of_status(status: RunStatus) -> Option<Self> {
        match status {
            RunStatus::Succeeded => Some(NotifyOn::Succeeded),
            RunStatus::Failed | RunStatus::Interrupted => Some(NotifyOn::Failed),
            RunStatus::Cancelled => Some(NotifyOn::Cancelled),
            _ => None,
        }
    }
}

/// The body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// Spool's own JSON (below).
    #[default]
    Json,
    /// A Slack incoming webhook's `{"text": …}`.
    Slack,
    /// A Microsoft Teams incoming webhook's MessageCard.
    Teams,
}

impl NotifyFormat {
    pub const NAMES: [&'static str; 3] = ["json", "slack", "teams"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "json" => NotifyFormat::Json,
            "slack" => NotifyFormat::Slack,
            "teams" => NotifyFormat::Teams,
            _ => return None,
        })
    }
}

/// One `[[notify]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notify {
    pub on: Vec<NotifyOn>,
    /// Often a secret itself (Slack's and Teams' URLs carry their key): shown and recorded
    /// only as [`Notify::target`].
    #[serde(skip)]
    pub webhook: String,
    pub format: NotifyFormat,
    pub long_running_secs: Option<u64>,
}

impl Notify {
    /// What may be shown of the webhook: its scheme and host, never its path or query.
    pub fn target(&self) -> String {
        webhook_origin(&self.webhook).unwrap_or_else(|| "webhook".into())
    }

    pub fn wants(&self, on: NotifyOn) -> bool {
        self.on.contains(&on)
    }
}

/// `scheme://host[:port]` of an `http` or `https` URL with a host, or `None`.
pub fn webhook_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials in the URL are a secret too.
    let host = authority.rsplit('@').next().unwrap_or("");
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    valid.then(|| format!("{scheme}://{host}"))
}

/// Why `url` cannot be a webhook, if it cannot.
pub fn webhook_problem(url: &str) -> Option<String> {
    if url.len() > MAX_WEBHOOK_LEN {
        return Some(format!("a webhook URL is at most {MAX_WEBHOOK_LEN} bytes"));
    }
    if url.chars().any(char::is_control) || url.contains(' ') {
        return Some("a webhook URL has no spaces or control characters".into());
    }
    if webhook_origin(url).is_none() {
        return Some("a webhook is an http:// or https:// URL with a host".into());
    }
    None
}

/// What a notification says about a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunNews {
    pub pipeline: String,
    pub run_id: i64,
    /// `failed`, `succeeded`, `cancelled`, or `long_running`.
    pub event: NotifyOn,
    /// The run's status now (`running` for a long-running one).
    pub status: String,
    pub elapsed_secs: f64,
    /// Notebooks whose last attempt failed or timed out, with that attempt's error.
    pub failed: Vec<FailedNotebook>,
    /// The run's page in Spool's web app, when the server knows its address.
    pub link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedNotebook {
    pub task: String,
    pub error: Option<String>,
}

impl RunNews {
    /// The news of `run` at `now_ms`; `link_base` is the web app's address (`http://host:port/`).
    pub fn of(run: &RunRecord, event: NotifyOn, now_ms: i64, link_base: Option<&str>) -> Self {
        let failed = run
            .tasks
            .iter()
            .filter_map(|(task, t)| {
                let last = t.attempts.last()?;
                let failed = matches!(
                    last.outcome,
                    Some(
                        crate::runlog::AttemptOutcome::Failed
                            | crate::runlog::AttemptOutcome::TimedOut
                    )
                );
                failed.then(|| FailedNotebook {
                    task: task.clone(),
                    error: last.error.as_ref().map(|e| {
                        let text = format!("{}: {}", e.ename, e.evalue);
                        cut(&text, MAX_ERROR_CHARS)
                    }),
                })
            })
            .take(MAX_FAILED_LISTED)
            .collect();
        let ended = run.ended_ms.unwrap_or(now_ms);
        RunNews {
            pipeline: run.pipeline.clone(),
            run_id: run.id,
            event,
            status: format!("{:?}", run.status).to_lowercase(),
            elapsed_secs: (ended - run.started_ms).max(0) as f64 / 1000.0,
            failed,
            link: link_base.map(|b| format!("{}#/runs/{}", b, run.id)),
        }
    }

    /// One line for people.
    pub fn headline(&self) -> String {
        let what = match self.event {
            NotifyOn::Failed => "failed",
            NotifyOn::Succeeded => "succeeded",
            NotifyOn::Cancelled => "was cancelled",
            NotifyOn::LongRunning => "is still running",
        };
        format!(
            "Spool: pipeline {} run #{} {what} after {}",
            self.pipeline,
            self.run_id,
            crate::duration_text(self.elapsed_secs)
        )
    }

    /// The request body in `format`.
    pub fn body(&self, format: NotifyFormat) -> serde_json::Value {
        let mut lines = vec![self.headline()];
        for f in &self.failed {
            lines.push(match &f.error {
                Some(e) => format!("• {}: {e}", f.task),
                None => format!("• {}", f.task),
            });
        }
        if let Some(link) = &self.link {
            lines.push(link.clone());
        }
        match format {
            NotifyFormat::Json => serde_json::to_value(self).unwrap_or_default(),
            NotifyFormat::Slack => serde_json::json!({ "text": lines.join("\n") }),
            NotifyFormat::Teams => serde_json::json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": self.headline(),
                "themeColor": if self.event == NotifyOn::Succeeded { "2EB67D" } else { "E01E5A" },
                "title": self.headline(),
                "text": lines[1..].join("\n\n"),
            }),
        }
    }
}

fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_show_only_their_origin_and_bad_ones_are_named() {
        for (url, origin) in [
            (
                "https://hooks.slack.com/services/T0/B0/secret",
                Some("https://hooks.slack.com"),
            ),
            (
                "http://127.0.0.1:8099/hook?key=s3cret",
                Some("http://127.0.0.1:8099"),
            ),
            ("https://user:pw@example.com/x", Some("https://example.com")),
            ("ftp://example.com/x", None),
            ("https:///x", None),
            ("not a url", None),
        ] {
            assert_eq!(webhook_origin(url).as_deref(), origin, "{url}");
        }
        assert!(webhook_problem("https://example.com/a b").is_some());
        assert!(
            webhook_problem(&format!("https://e.com/{}", "a".repeat(MAX_WEBHOOK_LEN))).is_some()
        );
        assert!(webhook_problem("https://example.com/hook").is_none());
    }

    fn news() -> RunNews {
        RunNews {
            pipeline: "daily".into(),
            run_id: 7,
            event: NotifyOn::Failed,
            status: "failed".into(),
            elapsed_secs: 125.0,
            failed: vec![FailedNotebook {
                task: "load".into(),
                error: Some("ValueError: bad".into()),
            }],
            link: Some("http://127.0.0.1:8080/#/runs/7".into()),
        }
    }

    #[test]
    fn event_names_are_the_ones_written() {
        for e in NotifyOn::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), e.name());
            assert_eq!(NotifyOn::parse(e.name()), Some(e));
        }
        assert_eq!(NotifyOn::parse("exploded"), None);
    }

    #[test]
    fn bodies_carry_the_run_its_failures_and_its_link_in_each_format() {
        let n = news();
        let json = n.body(NotifyFormat::Json);
        assert_eq!(json["run_id"], 7);
        assert_eq!(json["event"], "failed");
        assert_eq!(json["failed"][0]["task"], "load");
        let slack = n.body(NotifyFormat::Slack);
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.starts_with("Spool: pipeline daily run #7 failed after 2m 05s"),
            "{text}"
        );
        assert!(
            text.contains("• load: ValueError: bad") && text.contains("#/runs/7"),
            "{text}"
        );
        let teams = n.body(NotifyFormat::Teams);
        assert_eq!(teams["@type"], "MessageCard");
        assert!(teams["text"].as_str().unwrap().contains("load: ValueError"));
    }
}
