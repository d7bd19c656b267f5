//! `results.xml`: the checks of one run as a JUnit test suite, so CI systems show them — one
//! test case per anomaly kind, one for the final read's completeness and one for the workload's
//! overall expectation. A case fails when its check contradicts what the workload expects; the
//! `expectation` case fails exactly when `kchaos workload` and `kchaos check` exit 1: both follow
//! the one pass rule, [`Results::outcome`].

use std::fmt::Write;
use std::path::{Path, PathBuf};

use checker::{AnomalyKind, LostExpectation, Outcome, Results};

use crate::error::ReportError;
use crate::escape::escape;
use crate::run_dir::{JUNIT_FILE, RESULTS_FILE, read_results, read_workload, require_dir};

/// One check and, when it fails, why.
struct Case {
    name: String,
    failure: Option<String>,
    output: String,
}

/// Writes `results.xml` beside `results.json` in `run_dir` and returns its path.
pub fn write_junit(run_dir: &Path) -> Result<PathBuf, ReportError> {
    require_dir(run_dir)?;
    let results_path = run_dir.join(RESULTS_FILE);
    let results =
        read_results(&results_path)?.ok_or(ReportError::Missing { path: results_path })?;
    let workload = read_workload(&run_dir.join(crate::run_dir::WORKLOAD_FILE))?;
    let seed = workload
        .as_ref()
        .and_then(|workload| workload.get("seed"))
        .and_then(toml::Value::as_integer);
    let name = std::fs::canonicalize(run_dir)
        .ok()
        .and_then(|dir| {
            let run = dir.file_name()?.to_string_lossy().into_owned();
            let workload = dir.parent()?.file_name()?.to_string_lossy().into_owned();
            Some(format!("{workload}/{run}"))
        })
        .unwrap_or_else(|| "run".to_string());
    let outcome = results.outcome();
    let xml = junit_xml(&name, seed, &results, outcome);
    let path = run_dir.join(JUNIT_FILE);
    std::fs::write(&path, xml).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn cases(results: &Results, outcome: Outcome) -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in AnomalyKind::ALL {
        let anomaly = results.anomaly(kind);
        let examples: Vec<String> = anomaly
            .examples
            .iter()
            .map(|example| example.explanation.clone())
            .collect();
        let output = format!("{} found\n{}", anomaly.count, examples.join("\n"));
        let failure = if kind == AnomalyKind::Lost {
            match results.expectations.lost {
                LostExpectation::None if anomaly.count > 0 => Some(format!(
                    "{} acknowledged sends lost; the workload expects none",
                    anomaly.count
                )),
                LostExpectation::Some if anomaly.count == 0 => Some(
                    "no acknowledged send was lost; the workload expects some loss".to_string(),
                ),
                _ => None,
            }
        } else if anomaly.invalid && anomaly.count > 0 {
            Some(format!("{} {} found", anomaly.count, kind.name()))
        } else {
            None
        };
        cases.push(Case {
            name: kind.name().to_string(),
            failure,
            output,
        });
    }
    let final_read = &results.final_read;
    cases.push(Case {
        name: "final-read-complete".to_string(),
        failure: (!final_read.is_complete()).then(|| {
            format!(
                "final read not complete: missing {:?}, incomplete {:?}, failed {:?}",
                final_read.missing, final_read.incomplete, final_read.failed
            )
        }),
        output: format!(
            "complete partitions {:?}, {} records",
            final_read.complete, final_read.records
        ),
    });
    cases.push(Case {
        name: "expectation".to_string(),
        failure: match outcome {
            Outcome::AsExpected => None,
            Outcome::ProvesNothing => Some(outcome.describe().to_string()),
            Outcome::Contradicted if results.reasons.is_empty() => {
                Some(outcome.describe().to_string())
            }
            Outcome::Contradicted => Some(results.reasons.join("; ")),
        },
        output: results.reasons.join("\n"),
    });
    cases
}

/// The JUnit document for one run.
fn junit_xml(name: &str, seed: Option<i64>, results: &Results, outcome: Outcome) -> String {
    let cases = cases(results, outcome);
    let failures = cases.iter().filter(|case| case.failure.is_some()).count();
    let seconds = results.totals.duration_ns as f64 / 1e9;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = escape(&format!("kchaos.{name}"));
    let _ = writeln!(
        xml,
        r#"<testsuites name="kchaos" tests="{}" failures="{failures}" errors="0" time="{seconds:.3}">"#,
        cases.len()
    );
    let _ = writeln!(
        xml,
        r#"  <testsuite name="{suite}" tests="{}" failures="{failures}" errors="0" skipped="0" time="{seconds:.3}">"#,
        cases.len()
    );
    xml.push_str("    <properties>\n");
    if let Some(seed) = seed {
        let _ = writeln!(xml, r#"      <property name="seed" value="{seed}"/>"#);
    }
    let verdict = serde_json::to_string(&results.valid).unwrap_or_default();
    let _ = writeln!(
        xml,
        r#"      <property name="valid" value="{}"/>"#,
        escape(&verdict)
    );
    xml.push_str("    </properties>\n");
    for case in &cases {
        let _ = write!(
            xml,
            r#"    <testcase classname="{suite}" name="{}" time="0">"#,
            escape(&case.name)
        );
        if let Some(failure) = &case.failure {
            let _ = write!(
                xml,
                r#"<failure message="{}" type="{}">{}</failure>"#,
                escape(failure),
                escape(&case.name),
                escape(failure)
            );
        }
        let _ = writeln!(
            xml,
            "<system-out>{}</system-out></testcase>",
            escape(&case.output)
        );
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}
