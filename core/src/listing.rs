//! Which runs a history listing asks for: the options of `GET /api/runs` and `spool runs` as
//! given, checked once here for both.

use crate::runlog::{RunStatus, TriggerKind};
use crate::template::Date;
use serde::Deserialize;

/// Runs listed when the caller does not say how many.
pub const DEFAULT_LIMIT: u32 = 50;
/// Runs listed at most by one call; more is a page further (`before`).
pub const MAX_LIMIT: u32 = 500;

/// A listing's options as given (query parameters, command-line options).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// How many, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub limit: Option<String>,
    /// Only runs with a smaller id: the next page starts before the last id of this one.
    pub before: Option<String>,
    /// A pipeline file (`daily_sales.toml`: a name ending in `.toml`) or a pipeline's name.
    pub pipeline: Option<String>,
    /// One status or several, comma-separated.
    pub status: Option<String>,
    /// What started them (`cli`, `api`, `resume`, `schedule`), one or several comma-separated.
    pub trigger: Option<String>,
    /// Runs started at or after this time (see [`parse_time`]).
    pub since: Option<String>,
    /// Runs started before this time.
    pub until: Option<String>,
}

/// A checked listing: the newest runs first that match every field that is set.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFilter {
    pub limit: u32,
    pub before: Option<i64>,
    pub pipeline: Option<String>,
    /// Any of these (every status when empty).
    pub statuses: Vec<RunStatus>,
    /// Any of these (every run, also those of logs without a trigger, when empty).
    pub triggers: Vec<TriggerKind>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            limit: DEFAULT_LIMIT,
            before: None,
            pipeline: None,
            statuses: Vec::new(),
            triggers: Vec::new(),
            since_ms: None,
            until_ms: None,
        }
    }
}

impl RunQuery {
    /// The filter these options ask for, or every problem found, each naming its option.
    pub fn check(&self) -> Result<RunFilter, String> {
        let mut problems = Vec::new();
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    problems.push(format!("`limit` must be 1 to {MAX_LIMIT}, not `{text}`"));
                    DEFAULT_LIMIT
                }
            },
        };
        let before = match self.before.as_deref() {
            None => None,
            Some(text) => match text.parse::<i64>() {
                Ok(id) => Some(id),
                Err(_) => {
                    problems.push(format!("`before` must be a run id, not `{text}`"));
                    None
                }
            },
        };
        let mut statuses = Vec::new();
        for name in self.status.iter().flat_map(|s| s.split(',')) {
            match RunStatus::parse(name.trim()) {
                Some(s) => statuses.push(s),
                None => problems.push(format!(
                    "`status`: `{name}` is not one of {}",
                    RunStatus::ALL.map(RunStatus::name).join(", ")
                )),
            }
        }
        let mut triggers = Vec::new();
        for name in self.trigger.iter().flat_map(|s| s.split(',')) {
            match TriggerKind::parse(name.trim()) {
                Some(k) => triggers.push(k),
                None => problems.push(format!(
                    "`trigger`: `{name}` is not one of {}",
                    TriggerKind::KNOWN.map(TriggerKind::name).join(", ")
                )),
            }
        }
        let mut time = |option: &str, given: &Option<String>| {
            let text = given.as_deref()?;
            let parsed = parse_time(text);
            if parsed.is_none() {
                problems.push(format!(
                    "`{option}`: `{text}` is not a time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or milliseconds since 1970)"
                ));
            }
            parsed
        };
        let since_ms = time("since", &self.since);
        let until_ms = time("until", &self.until);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(RunFilter {
            limit,
            before,
            pipeline: self.pipeline.clone().filter(|p| !p.is_empty()),
            statuses,
            triggers,
            since_ms,
            until_ms,
        })
    }
}

/// A time in milliseconds since 1970 (UTC): `YYYY-MM-DD` (its midnight),
/// `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DDTHH:MMZ`, or the milliseconds themselves.
pub fn parse_time(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let (day, clock) = match text.split_once('T') {
        Some((day, clock)) => (day, Some(clock.strip_suffix('Z')?)),
        None => (text, None),
    };
    let days = Date::parse(day)?.days();
    let secs = match clock {
        None => 0,
        Some(clock) => {
            let parts: Vec<&str> = clock.split(':').collect();
            if !(2..=3).contains(&parts.len())
                || parts
                    .iter()
                    .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                return None;
            }
            let field = |i: usize, max: i64| {
                parts
                    .get(i)
                    .map_or(Some(0), |p| p.parse::<i64>().ok().filter(|&v| v <= max))
            };
            field(0, 23)? * 3600 + field(1, 59)? * 60 + field(2, 59)?
        }
    };
    Some((days * 86_400 + secs) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_dates_utc_clock_times_or_milliseconds() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("2026-11-30T09:30Z"), Some(1_796_031_000_000));
        assert_eq!(parse_time("2026-11-30T09:30:15Z"), Some(1_796_031_015_000));
        assert_eq!(parse_time("1796031000000"), Some(1_796_031_000_000));
        for bad in [
            "",
            "2026-11-31",
            "2026-11-30T09:30",
            "2026-11-30T24:00Z",
            "2026-11-30T9:30Z",
            "yesterday",
            "-5",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_query_is_checked_with_every_problem_named() {
        let filter = RunQuery {
            status: Some("failed, cancelled".into()),
            since: Some("2026-11-01".into()),
            pipeline: Some("nightly.toml".into()),
            ..RunQuery::default()
        }
        .check()
        .expect("valid");
        assert_eq!(filter.limit, DEFAULT_LIMIT);
        assert_eq!(
            filter.statuses,
            vec![RunStatus::Failed, RunStatus::Cancelled]
        );
        assert_eq!(filter.since_ms, parse_time("2026-11-01"));
        let err = RunQuery {
            limit: Some((MAX_LIMIT + 1).to_string()),
            before: Some("x".into()),
            status: Some("failed,broken".into()),
            trigger: Some("cron".into()),
            until: Some("soon".into()),
            ..RunQuery::default()
        }
        .check()
        .unwrap_err();
        for named in ["`limit`", "`before`", "`broken`", "`cron`", "`until`"] {
            assert!(err.contains(named), "{err}");
        }
        assert!(RunQuery {
            limit: Some("0".into()),
            ..RunQuery::default()
        }
        .check()
        .is_err());
    }
}
