//! Spool's pure core: pipeline metadata, validation, DAG, scheduling state machine and pool
//! simulator. No I/O, no clock, no threads: the environment comes in through [`source::Sources`],
//! time comes in as arguments.

pub mod calibrate;
pub mod dag;
pub mod diag;
pub mod dry_run;
pub mod edit;
pub mod gen;
pub mod import;
pub mod layout;
pub mod listing;
pub mod model;
pub mod notebook;
pub mod overlap;
pub mod params;
pub mod parse;
pub mod runlog;
pub mod sched;
pub mod schedule;
pub mod sim;
pub mod source;
pub mod template;
pub mod value_condition;
