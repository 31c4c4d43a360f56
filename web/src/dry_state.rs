//! The dry run's slice of the app state. The form, as typed, becomes `spool_core`'s
//! [`SimOptions`], checked by its one `validate` (the limits of the CLI and the API); the
//! reports are core's [`DryRunReport`]: one on the estimates and, when the user picks a run or
//! a history statistic (p50, p90), one calibrated on what the server measured there
//! (`GET /api/pipelines/{file}/calibration`: durations, start-up, dispatch latency, capacity).
//! The pool-size sweep follows a moment later, so typing stays responsive.
//!
//! The reducer does no simulation: the App runs the [`DryJob`] that [`DryRunState::job`] asks
//! for (after each change of the plan, the form or the calibration) and dispatches its result,
//! which is kept only if it was computed from what the state holds then. The reports are
//! memoised on those inputs: a change that leaves them equal (a comment edited, a field typed
//! back) simulates nothing.

use crate::memo::{same, ByValue, Memo};
use spool_core::calibrate::{Calibration, DurationsFrom};
use spool_core::dag::Plan;
use spool_core::dry_run::{parse_assumptions, DryRunReport, SimOptions, MAX_SECS};
use spool_core::sched::Policy;
use std::rc::Rc;

/// The sweep the page shows unless told otherwise.
pub const DEFAULT_SWEEP: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryField {
    Executors,
    Cores,
    Startup,
    Price,
    /// In minutes.
    Deadline,
    SweepMax,
    Seed,
    Variation,
    FailureRate,
    /// Values notebooks publish, for conditions on values: `ID.KEY=VALUE` a line.
    Assume,
}

impl DryField {
    pub const ALL: [DryField; 10] = [
        DryField::Executors,
        DryField::Cores,
        DryField::Startup,
        DryField::Price,
        DryField::Deadline,
        DryField::SweepMax,
        DryField::Seed,
        DryField::Variation,
        DryField::FailureRate,
        DryField::Assume,
    ];

    /// The [`SimOptions`] field it sets, as `validate` names it.
    fn option(self) -> &'static str {
        match self {
            DryField::Executors => "executors",
            DryField::Cores => "executor_cores",
            DryField::Startup => "node_startup_secs",
            DryField::Price => "price_per_node_hour",
            DryField::Deadline => "deadline_secs",
            DryField::SweepMax => "sweep",
            DryField::Seed => "seed",
            DryField::Variation => "variation",
            DryField::FailureRate => "failure_rate",
            DryField::Assume => "assume",
        }
    }
}

/// The dry run form as typed; an empty field means core's default, as an option left out of
/// the CLI's flags or the API's body does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DryForm {
    /// By [`DryField`] order.
    values: [String; 10],
    pub policy: Policy,
}

impl DryForm {
    /// What an empty field means, for its placeholder.
    pub fn placeholder(f: DryField, plan: &Plan) -> String {
        let d = SimOptions::default();
        match f {
            DryField::Executors => plan.pool.executors.to_string(),
            DryField::Cores => plan.pool.executor_cores.to_string(),
            DryField::Startup => format!(
                "{} or the run's",
                spool_core::sim::PoolSpec::DEFAULT_NODE_STARTUP_SECS
            ),
            DryField::Price => d.price_per_node_hour.to_string(),
            DryField::Deadline => "none".into(),
            DryField::SweepMax => DEFAULT_SWEEP.to_string(),
            DryField::Seed => d.seed.to_string(),
            DryField::Variation => d.variation.to_string(),
            DryField::FailureRate => d.failure_rate.to_string(),
            DryField::Assume => "check.rows = 0".into(),
        }
    }

    pub fn get(&self, f: DryField) -> &str {
        &self.values[f as usize]
    }

    pub fn set(&mut self, f: DryField, v: String) {
        self.values[f as usize] = v;
    }

    /// Core's options, or a message for each field that does not read or is out of range.
    pub fn options(&self) -> Result<SimOptions, Vec<(DryField, String)>> {
        let mut errors = Vec::new();
        let mut read = |f: DryField, whole: bool| -> Option<f64> {
            let s = self.get(f).trim();
            if s.is_empty() {
                return None;
            }
            let value = if whole {
                s.parse::<u64>().ok().map(|n| n as f64)
            } else {
                s.parse::<f64>().ok().filter(|x| x.is_finite())
            };
            if value.is_none() {
                errors.push((
                    f,
                    if whole { "a whole number" } else { "a number" }.to_string(),
                ));
            }
            value
        };
        let whole = |x: Option<f64>| x.map(|n| n.min(f64::from(u32::MAX)) as u32);
        let executors = whole(read(DryField::Executors, true));
        let cores = whole(read(DryField::Cores, true));
        let startup = read(DryField::Startup, false);
        let price = read(DryField::Price, false);
        let deadline_mins = read(DryField::Deadline, false);
        let sweep = whole(read(DryField::SweepMax, true));
        let seed_given = read(DryField::Seed, true).is_some();
        let variation = read(DryField::Variation, false);
        let failure_rate = read(DryField::FailureRate, false);
        // One assumption a line; `#` starts a comment line.
        let assume = parse_assumptions(
            self.get(DryField::Assume)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
        .unwrap_or_else(|e| {
            errors.push((DryField::Assume, e.message));
            Default::default()
        });
        let d = SimOptions::default();
        // Whole numbers above 2^53 lose digits as f64, so the seed is read again exactly.
        let seed = match seed_given {
            true => self.get(DryField::Seed).trim().parse().unwrap_or(d.seed),
            false => d.seed,
        };
        let options = SimOptions {
            executors,
            executor_cores: cores,
            node_startup_secs: startup,
            price_per_node_hour: price.unwrap_or(d.price_per_node_hour),
            deadline_secs: deadline_mins.map(|m| m * 60.0),
            sweep: Some(sweep.unwrap_or(DEFAULT_SWEEP)),
            seed,
            variation: variation.unwrap_or(d.variation),
            failure_rate: failure_rate.unwrap_or(d.failure_rate),
            policy: self.policy,
            assume,
            ..d
        };
        for e in options.validate() {
            let Some(f) = DryField::ALL.into_iter().find(|f| f.option() == e.field) else {
                continue;
            };
            let message = if f == DryField::Deadline {
                format!("minutes from 0 to {}", MAX_SECS / 60.0)
            } else {
                e.message
            };
            if !errors.iter().any(|(g, _)| *g == f) {
                errors.push((f, message));
            }
        }
        if errors.is_empty() {
            Ok(options)
        } else {
            Err(errors)
        }
    }
}

impl DryForm {
    /// [`DryForm::options`] for `plan`: assumptions must name its notebooks, as the CLI and
    /// the API require.
    pub fn options_on(&self, plan: &Plan) -> Result<SimOptions, Vec<(DryField, String)>> {
        let options = self.options()?;
        let unknown: Vec<(DryField, String)> = options
            .unknown_assumptions(plan)
            .into_iter()
            .map(|e| (DryField::Assume, e.message))
            .collect();
        match unknown.is_empty() {
            true => Ok(options),
            false => Err(unknown),
        }
    }
}

/// The history that calibrates the dry run, and what the server measured there.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrating {
    pub from: DurationsFrom,
    /// `None` while the server is being asked.
    pub calibration: Option<Rc<Calibration>>,
}

/// What the reports are computed from, compared by value: an edit giving an equal plan (a
/// comment, a key written again) does not simulate again.
#[derive(Debug, Clone, PartialEq)]
pub struct DryKey {
    pub plan: ByValue<Plan>,
    pub options: SimOptions,
    pub calibration: Option<Rc<Calibration>>,
}

/// The reports of one [`DryKey`].
#[derive(Debug, Clone)]
pub struct DryReports {
    /// On the file's estimates.
    pub estimated: Rc<DryRunReport>,
    /// On the chosen run's measurements; the page's main figures when there is one.
    pub calibrated: Option<Rc<DryRunReport>>,
    /// The shown report with its pool-size sweep, once computed.
    pub swept: Option<Rc<DryRunReport>>,
}

/// A report is never changed once built (the sweep makes a new one), so the same `Rc` is the
/// same report, and a different one a newer report.
impl PartialEq for DryReports {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.estimated, &other.estimated)
            && same(self.calibrated.as_ref(), other.calibrated.as_ref())
            && same(self.swept.as_ref(), other.swept.as_ref())
    }
}

/// Simulations to run outside the reducer: the reports of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct DryJob(pub DryKey);

impl DryJob {
    /// Runs the simulations (the heavy part), as an action that stores their result.
    pub fn run(self) -> DryAction {
        let DryKey {
            plan: ByValue(plan),
            options,
            calibration,
        } = &self.0;
        let reports = DryReports {
            estimated: Rc::new(DryRunReport::without_sweep(plan, options, None)),
            calibrated: calibration.as_ref().map(|c| {
                Rc::new(DryRunReport::without_sweep(
                    plan,
                    options,
                    Some(Calibration::clone(c)),
                ))
            }),
            swept: None,
        };
        DryAction::Computed(Box::new((self.0, reports)))
    }
}

/// The pool-size sweep of the shown report of one generation, to run outside the reducer.
#[derive(Debug, Clone)]
pub struct SweepJob {
    generation: u64,
    plan: Rc<Plan>,
    options: SimOptions,
    report: Rc<DryRunReport>,
}

impl SweepJob {
    pub fn run(self) -> DryAction {
        let mut report = DryRunReport::clone(&self.report);
        report.add_sweep(&self.plan, &self.options);
        DryAction::Swept(self.generation, Rc::new(report))
    }
}

#[derive(Debug, Clone)]
pub enum DryAction {
    Field(DryField, String),
    Policy(Policy),
    /// Calibrate the dry run on this history (a run, or p50/p90 over the last runs; the server
    /// measures it), or on none.
    Calibrate(Option<DurationsFrom>),
    /// What the server measured for a calibration (ignored unless it is the chosen one).
    CalibrationLoaded(Calibration),
    /// A [`DryJob`]'s reports (dropped when the plan, form or calibration changed since).
    Computed(Box<(DryKey, DryReports)>),
    /// A [`SweepJob`]'s report (dropped unless its generation is still the current one).
    Swept(u64, Rc<DryRunReport>),
}

/// Compared field by field, the generation first: new reports have a new one, so their keys'
/// plans are not compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DryRunState {
    /// Changes whenever new reports are kept; a sweep is only added to the current ones.
    pub generation: u64,
    pub form: DryForm,
    pub calibrate_from: Option<Calibrating>,
    reports: Memo<DryKey, DryReports>,
}

impl DryRunState {
    /// The report the page's figures, charts and sweep are about (the last computed while the
    /// form or the text has errors).
    pub fn shown(&self) -> Option<&Rc<DryRunReport>> {
        let r = self.reports.last()?;
        r.swept
            .as_ref()
            .or(r.calibrated.as_ref())
            .or(Some(&r.estimated))
    }

    pub fn estimated(&self) -> Option<&Rc<DryRunReport>> {
        self.reports.last().map(|r| &r.estimated)
    }

    pub fn calibrated(&self) -> Option<&Rc<DryRunReport>> {
        self.reports.last()?.calibrated.as_ref()
    }

    /// Whether the shown report has its sweep.
    pub fn swept(&self) -> bool {
        self.reports.last().is_some_and(|r| r.swept.is_some())
    }

    /// What the reports of `plan` are computed from now (`None` while the form has errors).
    fn key(&self, plan: &Rc<Plan>) -> Option<DryKey> {
        let options = self.form.options_on(plan).ok()?;
        let calibration = self
            .calibrate_from
            .as_ref()
            .and_then(|c| c.calibration.clone());
        Some(DryKey {
            plan: ByValue(plan.clone()),
            options,
            calibration,
        })
    }

    /// The simulations `plan` needs: `None` when the kept reports are of the same inputs, or
    /// the form has errors (the last reports stay).
    pub fn job(&self, plan: &Rc<Plan>) -> Option<DryJob> {
        let key = self.key(plan)?;
        self.reports.get(&key).is_none().then_some(DryJob(key))
    }

    /// The sweep of this `generation`'s shown report, unless it has one or is stale.
    pub fn sweep_job(&self, plan: &Rc<Plan>, generation: u64) -> Option<SweepJob> {
        if generation != self.generation || self.swept() {
            return None;
        }
        let key = self.key(plan)?;
        let reports = self.reports.get(&key)?;
        Some(SweepJob {
            generation,
            report: reports
                .calibrated
                .clone()
                .unwrap_or(reports.estimated.clone()),
            plan: key.plan.0,
            options: key.options,
        })
    }

    /// `plan`: the one shown (what results must have been computed from).
    pub fn reduce(&mut self, action: DryAction, plan: Option<&Rc<Plan>>) {
        match action {
            DryAction::Field(field, value) => self.form.set(field, value),
            DryAction::Policy(policy) => self.form.policy = policy,
            DryAction::Calibrate(from) => {
                self.calibrate_from = from.map(|from| Calibrating {
                    from,
                    calibration: None,
                })
            }
            DryAction::CalibrationLoaded(calibration) => {
                let chosen = self
                    .calibrate_from
                    .as_mut()
                    .filter(|c| c.from == calibration.durations_from);
                if let Some(chosen) = chosen {
                    chosen.calibration = Some(Rc::new(calibration));
                }
            }
            DryAction::Computed(computed) => {
                let (key, reports) = *computed;
                if plan.and_then(|p| self.key(p)).as_ref() == Some(&key) {
                    self.reports.insert(key, reports);
                    self.generation += 1;
                }
            }
            DryAction::Swept(generation, report) => {
                if generation == self.generation {
                    if let Some(reports) = self.reports.last_mut() {
                        reports.swept.get_or_insert(report);
                    }
                }
            }
        }
    }
}
