//! Delivers `[[notify]]` webhooks (bodies from `spool_core::notify`). A notification never
//! blocks or fails its run: it is sent from its own task after the run's end (or once the run
//! has run `long_running_secs`), and its outcome is recorded in the run log. Only what is safe
//! to repeat is retried: a connection that failed, a timeout, `429` and `5xx` answers.

use spool_core::notify::{Notify, NotifyOn};
use std::time::Duration;

/// Calls of one notification at most, waiting 1 s, 2 s, 4 s between them.
const TRIES: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Each call's limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub tries: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// The client notifications are sent with: no redirects (a webhook that moves is an error to
/// see, not a hop to follow), a timeout per call.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// POSTs `body` to the webhook until it answers, or is refused, or `TRIES` calls failed.
pub async fn deliver(client: &reqwest::Client, to: &Notify, body: &serde_json::Value) -> Delivery {
    let mut wait = FIRST_WAIT;
    let mut tries = 0;
    loop {
        tries += 1;
        let (status, error) = match client.post(&to.webhook).json(body).send().await {
            Ok(answer) => (Some(answer.status().as_u16()), None),
            // The URL's path and query are secret: the error is said without it.
            Err(e) => (None, Some(describe(e))),
        };
        let again = match status {
            Some(code) => code == 429 || (500..600).contains(&code),
            None => true,
        };
        if !again || tries >= TRIES {
            if let Some(why) = &error {
                tracing::warn!(target = %to.target(), tries, "notification not delivered: {why}");
            }
            return Delivery {
                tries,
                status,
                error,
            };
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let e = e.without_url();
    match std::error::Error::source(&e) {
        Some(cause) => format!("{kind}: {cause}"),
        None => format!("{kind}: {e}"),
    }
}

/// The entries of `notify` that want `event`.
pub fn wanting(notify: &[Notify], event: NotifyOn) -> Vec<Notify> {
    notify.iter().filter(|n| n.wants(event)).cloned().collect()
}
