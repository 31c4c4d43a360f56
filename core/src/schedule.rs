//! `[schedule]`: when `spool serve` starts a pipeline by itself, as a pure function of the time.
//!
//! A cron expression (standard 5 fields, read by the `croner` crate) in an IANA time zone (the
//! `chrono-tz` database compiled in, so WebAssembly gets the same answers). Times are
//! milliseconds since 1970-01-01 UTC, as everywhere in the run log. The clock stays outside:
//! [`Schedule::due`] takes `now` and the last slot the caller handled, and says which slots to
//! run; the server's scheduler persists that last slot.
//!
//! Daylight saving time follows Vixie cron (croner's rule): a slot whose local time does not
//! exist (spring forward: `30 2 * * *` in Europe/Amsterdam on the last Sunday of March) runs at
//! the first instant after the gap (03:00 CEST); a fixed local time that happens twice (fall
//! back) runs once, at its first occurrence, while an expression with a wildcard or a step in
//! its minute or hour (`*/15 * * * *`) runs in both passes of the repeated hour.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// `catch_up = "all"` runs at most this many missed slots (the newest), so that a server that
/// was down for a month does not start a month of minutely runs.
pub const MAX_CATCH_UP: usize = 100;
/// Slots looked at per call of [`Schedule::due`]: the ones to run, and a count of the ones
/// skipped that stops here.
pub const MAX_SLOTS_SCANNED: usize = 1000;
/// A slot at most this late is on time (the scheduler's wake-up is not exact); later, it was
/// missed (the server was down) and `catch_up` decides.
pub const ON_TIME_GRACE_MS: i64 = 60_000;
/// [`Schedule::next_after`] answers at most this many times.
pub const MAX_NEXT: usize = 1000;

/// What to do with the slots missed while the server was down (or too busy to wake up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Run none of them; only a slot that is on time runs.
    None,
    /// Run the newest one.
    Last,
    /// Run every one, oldest first: at most [`MAX_CATCH_UP`], the newest.
    All,
}

impl CatchUp {
    pub const NAMES: [&'static str; 3] = ["none", "last", "all"];

    pub fn parse(s: &str) -> Option<CatchUp> {
        match s {
            "none" => Some(CatchUp::None),
            "last" => Some(CatchUp::Last),
            "all" => Some(CatchUp::All),
            _ => None,
        }
    }
}

/// A cron expression, parsed; serialised as written.
#[derive(Debug, Clone, PartialEq)]
pub struct CronExpr {
    text: String,
    cron: croner::Cron,
}

impl CronExpr {
    /// Standard cron: minute, hour, day of month, month, day of week (names, ranges, steps,
    /// lists, `@daily` and the like); a day of month and a day of week both restricted match
    /// either, as in Vixie cron. Seconds and years are refused.
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        match parser.parse(text) {
            Ok(cron) => Ok(CronExpr {
                text: text.to_string(),
                cron,
            }),
            Err(e) => Err(format!(
                "{e} (5 fields: minute hour day-of-month month day-of-week)"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for CronExpr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// An IANA time zone (`Europe/Amsterdam`, `UTC`); serialised by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

impl Zone {
    pub const UTC: Zone = Zone(Tz::UTC);

    /// The zone of that exact name (IANA names are case-sensitive), or the closest names.
    pub fn parse(name: &str) -> Result<Zone, String> {
        name.parse::<Tz>().map(Zone).map_err(|_| {
            let hint =
                crate::diag::did_you_mean(name, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()))
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_else(|| {
                        " (an IANA name such as `Europe/Amsterdam` or `UTC`)".into()
                    });
            format!("unknown time zone `{name}`{hint}")
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// `ms` as this zone's wall clock, `YYYY-MM-DD HH:MM`.
    pub fn minute(&self, ms: i64) -> String {
        match DateTime::from_timestamp_millis(ms) {
            Some(t) => minute_of(&t.with_timezone(&self.0)),
            None => String::from("out of range"),
        }
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

fn minute_of<T: Datelike + Timelike>(t: &T) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `ms` in UTC, `YYYY-MM-DD HH:MM`.
pub fn utc_minute(ms: i64) -> String {
    Zone::UTC.minute(ms)
}

/// A pipeline's `[schedule]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub cron: CronExpr,
    pub timezone: Zone,
    /// The scheduled runs' parameter overrides, as `spool run --param` takes them (checked
    /// against the pipeline when it is loaded).
    pub params: BTreeMap<String, serde_json::Value>,
    pub catch_up: CatchUp,
    /// `false`: the schedule is written down but starts nothing.
    pub enabled: bool,
    #[serde(skip)]
    pub spans: ScheduleSpans,
}

/// Where the parts of `[schedule]` were written, for diagnostics found once the pipeline is
/// loaded (its `params` against the plan).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleSpans {
    pub table: crate::diag::Span,
    /// Where each name of `params` is written.
    pub params: BTreeMap<String, crate::diag::Span>,
}

/// A fire time as people read it: in the schedule's zone and in UTC (`YYYY-MM-DD HH:MM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireTime {
    /// Milliseconds since 1970-01-01 UTC.
    pub ms: i64,
    pub local: String,
    pub utc: String,
}

/// What [`Schedule::due`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Due {
    /// The slots to run now, oldest first: each run is triggered for that time.
    pub fire: Vec<i64>,
    /// Slots since the last one handled that are not run: missed, and `catch_up` says no (at
    /// most [`MAX_SLOTS_SCANNED`] are counted).
    pub skipped: usize,
    /// The newest slot at or before `now`: what the caller records as handled. `None` when
    /// no slot came since the last one handled.
    pub handled: Option<i64>,
}

impl Schedule {
    fn at(&self, ms: i64) -> Option<DateTime<Tz>> {
        Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&self.timezone.0))
    }

    /// Up to `n` (at most [`MAX_NEXT`]) slots strictly after `after_ms`, in order. Fewer when
    /// the expression has no more (`0 0 30 2 *` never comes).
    pub fn next_after(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let Some(mut t) = self.at(after_ms) else {
            return out;
        };
        while out.len() < n.min(MAX_NEXT) {
            match self.cron.cron.find_next_occurrence(&t, false) {
                Ok(next) if next > t => {
                    out.push(next.timestamp_millis());
                    t = next;
                }
                _ => break,
            }
        }
        out
    }

    /// [`Schedule::next_after`], each time in the schedule's zone beside UTC.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<FireTime> {
        self.next_after(after_ms, n)
            .into_iter()
            .map(|ms| FireTime {
                ms,
                local: self.timezone.minute(ms),
                utc: utc_minute(ms),
            })
            .collect()
    }

    /// The slots in `(last_ms, now_ms]` newest first, at most `limit`; and whether there are
    /// more.
    fn since(&self, last_ms: i64, now_ms: i64, limit: usize) -> (Vec<i64>, bool) {
        let mut out = Vec::new();
        let Some(mut t) = self.at(now_ms) else {
            return (out, false);
        };
        let mut inclusive = true;
        loop {
            match self.cron.cron.find_previous_occurrence(&t, inclusive) {
                Ok(prev) if prev.timestamp_millis() > last_ms && (inclusive || prev < t) => {
                    if out.len() == limit {
                        return (out, true);
                    }
                    out.push(prev.timestamp_millis());
                    t = prev;
                    inclusive = false;
                }
                _ => return (out, false),
            }
        }
    }

    /// Which slots to run at `now_ms`, when every slot up to `last_ms` has been handled (run or
    /// skipped). A slot at most [`ON_TIME_GRACE_MS`] late runs whatever `catch_up` says;
    /// older ones are missed and run as `catch_up` says: `none` none, `last` the newest,
    /// `all` up to [`MAX_CATCH_UP`] of the newest. `enabled` is the caller's to check.
    pub fn due(&self, last_ms: i64, now_ms: i64) -> Due {
        let (newest_first, more) = self.since(last_ms, now_ms, MAX_SLOTS_SCANNED);
        let Some(&newest) = newest_first.first() else {
            return Due::default();
        };
        let runs = match self.catch_up {
            CatchUp::None => usize::from(now_ms - newest <= ON_TIME_GRACE_MS),
            CatchUp::Last => 1,
            CatchUp::All => newest_first.len().min(MAX_CATCH_UP),
        };
        let mut fire: Vec<i64> = newest_first[..runs].to_vec();
        fire.reverse();
        Due {
            fire,
            skipped: newest_first.len() - runs + usize::from(more),
            handled: Some(newest),
        }
    }
}

/// A UTC instant from its calendar fields (`None` when invalid).
pub fn utc_ms(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> Option<i64> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .map(|t| t.timestamp_millis())
}

/// `YYYY-MM-DD HH:MM` (or `YYYY-MM-DDTHH:MM`, `Z` at the end allowed) as a UTC instant.
pub fn parse_utc_minute(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let b = text.as_bytes();
    let shape = b.len() == 16
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':';
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(r)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    utc_ms(n(0..4)? as i32, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, zone: &str, catch_up: CatchUp) -> Schedule {
        Schedule {
            cron: CronExpr::parse(cron).expect("a valid expression"),
            timezone: Zone::parse(zone).expect("a valid zone"),
            params: BTreeMap::new(),
            catch_up,
            enabled: true,
            spans: ScheduleSpans::default(),
        }
    }

    fn at(text: &str) -> i64 {
        parse_utc_minute(text).expect("YYYY-MM-DD HH:MM")
    }

    /// The next fire times after `from` (UTC), each as `local | UTC`.
    fn next(cron: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let s = schedule(cron, zone, CatchUp::None);
        s.upcoming(at(from), n)
            .into_iter()
            .map(|t| format!("{} | {}", t.local, t.utc))
            .collect()
    }

    /// Europe/Amsterdam, 2026: clocks go forward on 29 March at 02:00 CET (to 03:00 CEST) and
    /// back on 25 October at 03:00 CEST (to 02:00 CET).
    #[test]
    fn next_fire_times_across_amsterdam_dst_changes() {
        let cases: &[(&str, &str, usize, &[&str])] = &[
            // Daily at 02:30: the slot of 29 March does not exist; it runs at 03:00 CEST, the
            // first instant after the gap, and the day after is 02:30 CEST again.
            (
                "30 2 * * *",
                "2026-03-27 12:00",
                3,
                &[
                    "2026-03-28 02:30 | 2026-03-28 01:30",
                    "2026-03-29 03:00 | 2026-03-29 01:00",
                    "2026-03-30 02:30 | 2026-03-30 00:30",
                ],
            ),
            // Daily at 02:30 in October: that local time happens twice on the 25th; it runs
            // once, at the first (CEST, 00:30 UTC).
            (
                "30 2 * * *",
                "2026-10-23 12:00",
                3,
                &[
                    "2026-10-24 02:30 | 2026-10-24 00:30",
                    "2026-10-25 02:30 | 2026-10-25 00:30",
                    "2026-10-26 02:30 | 2026-10-26 01:30",
                ],
            ),
            // Every 30 minutes through the repeated hour: both passes run (00:00 and 01:00 UTC
            // are both 02:00 local).
            (
                "*/30 * * * *",
                "2026-10-24 23:45",
                6,
                &[
                    "2026-10-25 02:00 | 2026-10-25 00:00",
                    "2026-10-25 02:30 | 2026-10-25 00:30",
                    "2026-10-25 02:00 | 2026-10-25 01:00",
                    "2026-10-25 02:30 | 2026-10-25 01:30",
                    "2026-10-25 03:00 | 2026-10-25 02:00",
                    "2026-10-25 03:30 | 2026-10-25 02:30",
                ],
            ),
            // Hourly through the gap: 02:00 local never comes; the hour after it is 03:00.
            (
                "0 * * * *",
                "2026-03-28 23:30",
                3,
                &[
                    "2026-03-29 01:00 | 2026-03-29 00:00",
                    "2026-03-29 03:00 | 2026-03-29 01:00",
                    "2026-03-29 04:00 | 2026-03-29 02:00",
                ],
            ),
            // Weekdays at 06:00 in UTC: Friday, then Monday.
            (
                "0 6 * * MON-FRI",
                "2026-11-27 07:00",
                2,
                &[
                    "2026-11-30 06:00 | 2026-11-30 06:00",
                    "2026-12-01 06:00 | 2026-12-01 06:00",
                ],
            ),
        ];
        for (cron, from, n, want) in cases {
            let zone = if cron.contains("MON") {
                "UTC"
            } else {
                "Europe/Amsterdam"
            };
            assert_eq!(&next(cron, zone, from, *n), want, "{cron} after {from}");
        }
    }

    #[test]
    fn an_expression_that_never_comes_has_no_fire_times() {
        assert_eq!(
            next("0 0 30 2 *", "UTC", "2026-01-01 00:00", 3),
            Vec::<String>::new()
        );
    }

    /// Hourly at minute 0, last handled slot 01:00 UTC; the server looks again at 05:10 (the
    /// 02:00..05:00 slots were missed), or at 05:00:30 (05:00 is on time, the rest missed).
    #[test]
    fn missed_slots_run_as_catch_up_says() {
        let last = at("2026-06-01 01:00");
        let late = at("2026-06-01 05:10");
        let on_time = at("2026-06-01 05:00") + 30_000;
        let hours = |hs: &[u32]| -> Vec<i64> {
            hs.iter()
                .map(|h| utc_ms(2026, 6, 1, *h, 0).unwrap())
                .collect()
        };
        let cases = [
            (CatchUp::None, late, vec![], 4),
            (CatchUp::None, on_time, hours(&[5]), 3),
            (CatchUp::Last, late, hours(&[5]), 3),
            (CatchUp::Last, on_time, hours(&[5]), 3),
            (CatchUp::All, late, hours(&[2, 3, 4, 5]), 0),
        ];
        for (mode, now, fire, skipped) in cases {
            let due = schedule("0 * * * *", "UTC", mode).due(last, now);
            assert_eq!(due.fire, fire, "{mode:?} at {}", utc_minute(now));
            assert_eq!(due.skipped, skipped, "{mode:?} at {}", utc_minute(now));
            assert_eq!(due.handled, Some(at("2026-06-01 05:00")));
        }
    }

    #[test]
    fn nothing_is_due_before_the_next_slot_and_a_handled_slot_never_runs_twice() {
        let s = schedule("0 * * * *", "UTC", CatchUp::All);
        let last = at("2026-06-01 05:00");
        assert_eq!(s.due(last, last + 59 * 60_000), Due::default());
        let due = s.due(last - 1, last);
        assert_eq!(due.fire, vec![last]);
        assert_eq!(s.due(due.handled.unwrap(), last + 1000), Due::default());
    }

    #[test]
    fn catch_up_all_runs_at_most_the_newest_hundred() {
        let s = schedule("* * * * *", "UTC", CatchUp::All);
        let last = at("2026-06-01 00:00");
        // 600 minutes missed.
        let now = at("2026-06-01 10:00");
        let due = s.due(last, now);
        assert_eq!(due.fire.len(), MAX_CATCH_UP);
        assert_eq!(due.fire.first(), Some(&(now - 99 * 60_000)));
        assert_eq!(due.fire.last(), Some(&now));
        assert!(due.fire.windows(2).all(|w| w[0] < w[1]), "oldest first");
        assert_eq!(due.skipped, 500);
        // A year of minutes: counting stops at the scan limit.
        let due = s.due(at("2025-06-01 00:00"), now);
        assert_eq!(due.fire.len(), MAX_CATCH_UP);
        assert_eq!(due.skipped, MAX_SLOTS_SCANNED - MAX_CATCH_UP + 1);
    }

    #[test]
    fn catch_up_across_the_spring_forward_gap_counts_the_moved_slot_once() {
        // 02:30 daily in Amsterdam, down from the 27th to the 31st of March 2026.
        let s = schedule("30 2 * * *", "Europe/Amsterdam", CatchUp::All);
        let due = s.due(at("2026-03-27 01:30"), at("2026-03-31 06:00"));
        let local: Vec<String> = due.fire.iter().map(|&t| s.timezone.minute(t)).collect();
        assert_eq!(
            local,
            [
                "2026-03-28 02:30",
                "2026-03-29 03:00",
                "2026-03-30 02:30",
                "2026-03-31 02:30"
            ]
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_why() {
        for bad in [
            "",
            "0 2 * *",
            "0 0 2 * * * *",
            "61 * * * *",
            "0 2 * * FOO",
            "0 0 0 * * *",
        ] {
            assert!(CronExpr::parse(bad).is_err(), "`{bad}` must be refused");
        }
        assert_eq!(
            Zone::parse("Europe/Amsterdm"),
            Err("unknown time zone `Europe/Amsterdm`; did you mean `Europe/Amsterdam`?".into())
        );
        assert!(
            Zone::parse("europe/amsterdam").is_err(),
            "IANA names are case-sensitive"
        );
    }

    #[test]
    fn utc_minutes_read_back_what_they_print() {
        let t = at("2026-10-25 01:30");
        assert_eq!(utc_minute(t), "2026-10-25 01:30");
        assert_eq!(parse_utc_minute("2026-10-25T01:30Z"), Some(t));
        for bad in [
            "2026-10-25",
            "2026-13-01 00:00",
            "2026-10-25 1:300",
            "2026-10-25 +1:30",
        ] {
            assert_eq!(parse_utc_minute(bad), None, "{bad}");
        }
    }
}
