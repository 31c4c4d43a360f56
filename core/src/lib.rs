//! Spool's pure core: pipeline metadata, validation, DAG, scheduling state machine and pool
//! simulator. No I/O, no clock, no threads: the environment comes in through [`source::Sources`],
//! time comes in as arguments.

pub mod calibrate;
pub mod dag;
pub mod diag;
pub mod dry_run;
pub mod edit;
pub mod for_each;
pub mod gen;
pub mod grid;
pub mod import;
pub mod keys;
pub mod layout;
pub mod listing;
pub mod model;
pub mod notebook;
pub mod notify;
pub mod overlap;
pub mod params;
pub mod parse;
pub mod recorded;
pub mod repair;
pub mod runlog;
pub mod sched;
pub mod schedule;
pub mod secret;
pub mod sim;
pub mod source;
pub mod template;
pub mod timeline;
pub mod value_condition;

/// Seconds as people read them, in the browser's charts and figures and in notifications.
pub fn duration_text(secs: f64) -> String {
    if !secs.is_finite() {
        return "–".into();
    }
    let s = secs.round() as i64;
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}
