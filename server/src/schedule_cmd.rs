//! `spool schedule FILE`: when the pipeline's `[schedule]` starts it next, in the schedule's
//! time zone beside UTC.

use crate::plan_cmd::{load_file, print_diagnostics};
use spool_core::schedule::{parse_utc_minute, MAX_NEXT};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ScheduleArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// How many fire times to print.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=MAX_NEXT as i64))]
    pub count: u16,
    /// Fire times after this UTC instant (`YYYY-MM-DD HH:MM`) instead of after now.
    #[arg(long, value_parser = from_arg)]
    pub after: Option<i64>,
    /// Print them as JSON.
    #[arg(long)]
    pub json: bool,
}

fn from_arg(text: &str) -> Result<i64, String> {
    parse_utc_minute(text)
        .ok_or_else(|| format!("`{text}` is not a UTC time like 2026-03-29 01:30"))
}

pub fn schedule(args: ScheduleArgs) -> anyhow::Result<u8> {
    let loaded = load_file(&args.file)?;
    print_diagnostics(&loaded.diagnostics);
    let Some(plan) = loaded.plan else {
        return Ok(1);
    };
    let Some(schedule) = &plan.schedule else {
        eprintln!("{}: no [schedule] in this file", args.file.display());
        return Ok(1);
    };
    let after = args.after.unwrap_or_else(crate::runs::now_ms);
    let zone = schedule.timezone;
    let times = schedule.upcoming(after, usize::from(args.count));
    if args.json {
        let out = serde_json::json!({ "schedule": schedule, "next": times });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    println!(
        "{}: `{}` in {}, catch_up {}{}",
        args.file.display(),
        schedule.cron.as_str(),
        zone.name(),
        serde_json::json!(schedule.catch_up).as_str().unwrap_or("?"),
        if schedule.enabled {
            ""
        } else {
            " (enabled = false: spool serve starts nothing)"
        }
    );
    if times.is_empty() {
        println!("the expression never comes again");
    }
    let width = zone.name().len().max(16);
    println!("{:width$}  UTC", zone.name());
    for t in &times {
        println!("{:width$}  {}", t.local, t.utc);
    }
    Ok(0)
}
