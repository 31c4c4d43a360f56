//! When a failed request to Livy may be sent again: a pure function of the method, the attempt
//! and the failure, so that the policy is tested without a network.
//!
//! Only what cannot do harm twice is repeated: reads (and deletes, which Livy treats as
//! idempotent: a second one finds nothing) on connection errors, timeouts and the "try later"
//! answers 429, 502, 503 and 504. A POST is repeated only when it certainly did nothing: the
//! connection was never made, or Livy refused it with 429. Creating a session after an unclear
//! failure is left to the caller, which reconciles by name first (see
//! [`super::LivyClient::create_session`]).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: the request never reached Livy.
    Connect,
    /// No complete answer within the request timeout; Livy may have acted on the request.
    Timeout,
    /// The connection broke after the request may have been sent.
    Transport,
    /// Livy answered with an HTTP error status.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub base_delay: Duration,
    /// No wait is longer than this, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed;
    /// `None` when the request must not (or need not) be sent again.
    pub fn next_delay(&self, method: Method, attempt: u32, failure: &Failure) -> Option<Duration> {
        if attempt >= self.max_attempts || !Self::repeatable(method, failure) {
            return None;
        }
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let wanted = match failure {
            Failure::Status {
                retry_after: Some(after),
                ..
            } => *after,
            _ => backoff,
        };
        Some(wanted.min(self.max_delay))
    }

    fn repeatable(method: Method, failure: &Failure) -> bool {
        let busy = |code: u16| matches!(code, 429 | 502 | 503 | 504);
        match (method, failure) {
            (Method::Get | Method::Delete, Failure::Status { code, .. }) => busy(*code),
            (Method::Get | Method::Delete, _) => true,
            (Method::Post, Failure::Connect) => true,
            (Method::Post, Failure::Status { code: 429, .. }) => true,
            (Method::Post, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(code: u16) -> Failure {
        Failure::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn only_harmless_repeats_are_allowed() {
        let policy = RetryPolicy::default();
        let ms = |n| Some(Duration::from_millis(n));
        let cases = [
            (Method::Get, 1, Failure::Connect, ms(250)),
            (Method::Get, 2, Failure::Timeout, ms(500)),
            (Method::Get, 3, Failure::Transport, ms(1000)),
            (Method::Get, 1, status(503), ms(250)),
            (Method::Get, 1, status(502), ms(250)),
            (Method::Get, 1, status(504), ms(250)),
            (Method::Get, 1, status(429), ms(250)),
            (Method::Get, 1, status(500), None),
            (Method::Get, 1, status(404), None),
            (Method::Get, 1, status(401), None),
            (Method::Get, 5, Failure::Connect, None),
            (Method::Delete, 1, status(503), ms(250)),
            (Method::Delete, 1, Failure::Timeout, ms(250)),
            (Method::Post, 1, Failure::Connect, ms(250)),
            (Method::Post, 1, status(429), ms(250)),
            (Method::Post, 1, Failure::Timeout, None),
            (Method::Post, 1, Failure::Transport, None),
            (Method::Post, 1, status(503), None),
            (Method::Post, 1, status(502), None),
            (Method::Post, 1, status(400), None),
        ];
        for (method, attempt, failure, expected) in cases {
            assert_eq!(
                policy.next_delay(method, attempt, &failure),
                expected,
                "{method:?} attempt {attempt} after {failure:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let after = |secs| Failure::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            policy.next_delay(Method::Post, 1, &after(3)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            policy.next_delay(Method::Get, 1, &after(3600)),
            Some(policy.max_delay)
        );
    }

    proptest! {
        #[test]
        fn waits_are_capped_and_attempts_bounded(
            attempt in 1u32..100,
            max_attempts in 1u32..20,
            code in 400u16..600,
            method in prop_oneof![Just(Method::Get), Just(Method::Post), Just(Method::Delete)],
        ) {
            let policy = RetryPolicy { max_attempts, ..RetryPolicy::default() };
            for failure in [Failure::Connect, Failure::Timeout, Failure::Transport, status(code)] {
                if let Some(d) = policy.next_delay(method, attempt, &failure) {
                    prop_assert!(d <= policy.max_delay);
                    prop_assert!(attempt < max_attempts);
                }
            }
        }
    }
}
