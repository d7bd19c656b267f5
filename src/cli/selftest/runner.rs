//! The selftest's plan and runs (planted build only): for each planted bug the runs its mode
//! calls for, one at a time (several three-broker clusters at once on two cores would judge the
//! machine, not the harness), each a whole `kchaos workload` run whose cluster is started from
//! this binary with that bug switched on; then the control runs.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use checker::{Results, Validity};
use harness::cluster::config::CommandTemplates;
use harness::run::{RunOptions, RunOutcome};
use harness::workload::{self, WorkloadSpec};

use super::record::{BugInfo, RunRecord, Selftest, Verdict, format_ms};
use crate::cli::workload::{CoordinatorKind, client_templates, templates};
use crate::planted::{self, CATALOGUE, Component, PlantedBugEntry};

/// Runs the selftest: every bug of `only` (all when empty), then the controls.
pub fn execute(
    only: &[String],
    mode: &str,
    seeds: Vec<u64>,
    controls: bool,
    dir: &Path,
    workloads: &Path,
) -> anyhow::Result<Selftest> {
    let selected = select(only)?;
    let full = mode == "full";
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Every workload must load before anything runs: a typo should not wait for the end.
    for entry in &selected {
        for name in entry.workloads {
            load(name, workloads)?;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut interrupted = false;
    let planned = planned_runs(&selected, full, seeds.len());
    let mut done = 0;
    'bugs: for entry in selected.iter().filter(|entry| entry.awaiting.is_none()) {
        let chosen = if full {
            entry.workloads
        } else {
            &entry.workloads[..1]
        };
        for name in chosen {
            for &seed in &seeds {
                done += 1;
                let record = runtime.block_on(run_one(Some(entry), name, seed, dir, workloads));
                report_progress(done, planned, &record);
                interrupted = record.reasons.iter().any(|r| r == INTERRUPTED);
                let caught = record.verdict == Verdict::Caught;
                runs.push(record);
                if interrupted {
                    break 'bugs;
                }
                if caught && !full {
                    continue 'bugs;
                }
            }
        }
    }
    if controls && !interrupted {
        let mut names: Vec<&str> = Vec::new();
        for entry in &selected {
            let chosen = if full {
                entry.workloads
            } else {
                &entry.workloads[..entry.workloads.len().min(1)]
            };
            for name in chosen {
                if !names.contains(name) {
                    names.push(name);
                }
            }
        }
        for name in names {
            let record = runtime.block_on(run_one(None, name, seeds[0], dir, workloads));
            println!(
                "control {name} seed {}: {} ({})",
                record.seed,
                record.verdict.name(),
                format_ms(record.wall_ms)
            );
            interrupted = record.reasons.iter().any(|r| r == INTERRUPTED);
            runs.push(record);
            if interrupted {
                break;
            }
        }
    }
    let bugs: Vec<BugInfo> = selected.iter().map(|entry| info(entry)).collect();
    Ok(Selftest::conclude(
        mode,
        started,
        seeds,
        &bugs,
        runs,
        interrupted,
    ))
}

/// The reason a run records when a Ctrl-C cut it short.
const INTERRUPTED: &str = "interrupted";

/// The catalogue entries named in `only`, or all of them.
fn select(only: &[String]) -> anyhow::Result<Vec<&'static PlantedBugEntry>> {
    if only.is_empty() {
        return Ok(CATALOGUE.iter().collect());
    }
    only.iter()
        .map(|name| {
            planted::catalogue::find(name).ok_or_else(|| {
                let known: Vec<&str> = CATALOGUE.iter().map(|entry| entry.name).collect();
                anyhow::anyhow!(
                    "no planted bug is named `{name}` (known: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// The most runs the bugs can take (quick mode usually stops earlier).
fn planned_runs(selected: &[&PlantedBugEntry], full: bool, seeds: usize) -> usize {
    selected
        .iter()
        .filter(|entry| entry.awaiting.is_none())
        .map(|entry| if full { entry.workloads.len() } else { 1 } * seeds)
        .sum()
}

fn info(entry: &PlantedBugEntry) -> BugInfo {
    let strings = |items: &[&str]| items.iter().map(|item| item.to_string()).collect();
    BugInfo {
        name: entry.name.to_string(),
        component: entry.component.name().to_string(),
        models: entry.models.to_string(),
        faults: strings(entry.faults),
        workloads: strings(entry.workloads),
        awaiting: entry.awaiting.map(str::to_string),
    }
}

fn load(name: &str, dir: &Path) -> anyhow::Result<WorkloadSpec> {
    let path = workload::resolve(name, dir)?;
    Ok(WorkloadSpec::load(&path)?)
}

/// This binary as broker and coordinator, with `bug` switched on in the process it lives in.
fn templates_with(bug: Option<&PlantedBugEntry>) -> anyhow::Result<CommandTemplates> {
    let mut templates = templates(CoordinatorKind::Kchaos, None, None)?;
    if let Some(entry) = bug {
        match entry.component {
            Component::Broker => templates.broker.extend([
                "--override".to_string(),
                format!("{}={}", planted::BROKER_PROPERTY, entry.name),
            ]),
            Component::Coordinator => templates.coordinator.extend([
                planted::COORDINATOR_FLAG.to_string(),
                entry.name.to_string(),
            ]),
        }
    }
    Ok(templates)
}

/// One run of `workload` with `seed`, with `bug` switched on (none: a control run).
async fn run_one(
    bug: Option<&PlantedBugEntry>,
    workload: &str,
    seed: u64,
    dir: &Path,
    workloads: &Path,
) -> RunRecord {
    let started = Instant::now();
    let outcome = async {
        let mut spec = load(workload, workloads)?;
        spec.seed = Some(seed);
        let options = RunOptions {
            name: format!("{}/{workload}", bug.map_or("control", |entry| entry.name)),
            spec,
            store: dir.join("runs"),
            templates: templates_with(bug)?,
            clients: client_templates(None)?,
            progress: false,
        };
        let outcome = harness::run::run(options).await?;
        if let Err(error) = reports::write_run(&outcome.dir) {
            eprintln!("warning: no report for {}: {error}", outcome.dir.display());
        }
        Ok::<_, anyhow::Error>(outcome)
    }
    .await;
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut record = RunRecord {
        bug: bug.map(|entry| entry.name.to_string()),
        workload: workload.to_string(),
        seed,
        verdict: Verdict::Error,
        run_dir: None,
        anomalies: Vec::new(),
        first_anomaly: None,
        time_to_detection_ms: None,
        reasons: Vec::new(),
        wall_ms,
    };
    match outcome {
        Ok(outcome) => judge(&mut record, &outcome, dir),
        Err(error) => record.reasons.push(format!("{error:#}")),
    }
    record
}

/// Fills in what the run found: a bug run is caught when the checker calls it invalid; a
/// control run passes when its result matches the workload's expectation.
fn judge(record: &mut RunRecord, outcome: &RunOutcome, dir: &Path) {
    let results: &Results = &outcome.results;
    record.run_dir = Some(
        outcome
            .dir
            .strip_prefix(dir)
            .unwrap_or(&outcome.dir)
            .to_path_buf(),
    );
    record.anomalies = results
        .anomalies
        .iter()
        .filter(|(_, anomaly)| anomaly.invalid)
        .map(|(name, _)| name.clone())
        .collect();
    if let Some(detection) = &results.detection {
        record.first_anomaly = Some(detection.first_anomaly.clone());
        record.time_to_detection_ms = detection.time_to_detection_us.map(|us| us / 1_000);
    }
    record.reasons = results.reasons.clone();
    if outcome.interrupted {
        record.reasons.push(INTERRUPTED.to_string());
    }
    record.verdict = match (&record.bug, results.valid) {
        (None, _) if outcome.outcome().passed() => Verdict::Passed,
        (None, _) => Verdict::FalseAlarm,
        (Some(_), Validity::False) => Verdict::Caught,
        (Some(_), Validity::True) => Verdict::Missed,
        (Some(_), Validity::Unknown) => Verdict::Unknown,
    };
}

fn report_progress(done: usize, planned: usize, record: &RunRecord) {
    let detail = match record.verdict {
        Verdict::Caught => format!(
            ": {} {} after the first fault",
            record.first_anomaly.as_deref().unwrap_or("an anomaly"),
            record
                .time_to_detection_ms
                .map_or("—".to_string(), format_ms)
        ),
        Verdict::Passed => String::new(),
        _ if record.reasons.is_empty() => String::new(),
        _ => format!(" ({})", record.reasons.join("; ")),
    };
    println!(
        "[{done}/{planned}] {} x {} seed {}: {}{detail} ({})",
        record.bug.as_deref().unwrap_or("control"),
        record.workload,
        record.seed,
        record.verdict.name().to_uppercase(),
        format_ms(record.wall_ms)
    );
}
