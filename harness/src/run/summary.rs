//! The few lines a person reads at the end of a run (or of `kchaos check`): verdict, loss,
//! the longest unavailability after a fault, send latency p99, anomalies, client crashes, where
//! the run is.

use std::path::Path;

use checker::{self, Results};

/// A few lines for people: verdict, loss, unavailability, p99 latency, where the run is.
pub fn summary(results: &Results, dir: &Path) -> String {
    let verdict = match results.valid {
        checker::Validity::True => "valid",
        checker::Validity::False => "INVALID",
        checker::Validity::Unknown => "unknown",
    };
    let lost = results.count(checker::AnomalyKind::Lost);
    let unavailable_ms = results
        .faults
        .iter()
        .map(|fault| fault.longest_without_ok_send_us)
        .max()
        .unwrap_or(0)
        / 1000;
    let send = results.operations.get("send");
    let p99_ms = send.map_or(0.0, |figures| figures.latency_us.p99 as f64 / 1000.0);
    let (ok, fail, info) = send.map_or((0, 0, 0), |f| (f.ok, f.fail, f.info));
    let outcome = results.outcome();
    let mut text = format!(
        "verdict: {verdict} ({}: {})\n\
         sends: {ok} ok, {fail} fail, {info} info; lost: {lost}\n\
         longest unavailability after a fault: {unavailable_ms} ms; send latency p99: {p99_ms:.1} ms\n",
        if outcome.passed() { "PASS" } else { "FAIL" },
        outcome.describe()
    );
    let anomalies: Vec<String> = results
        .anomalies
        .iter()
        .filter(|(_, anomaly)| anomaly.count > 0)
        .map(|(name, anomaly)| format!("{name} {}", anomaly.count))
        .collect();
    if !anomalies.is_empty() {
        text.push_str(&format!("anomalies: {}\n", anomalies.join(", ")));
    }
    if results.totals.client_crashes > 0 {
        let causes: Vec<String> = results
            .client_crashes
            .iter()
            .take(3)
            .map(|crash| match crash.process {
                Some(process) => format!("client {process}: {}", crash.cause),
                None => crash.cause.clone(),
            })
            .collect();
        let more = if results.totals.client_crashes > causes.len() as u64 {
            ", ..."
        } else {
            ""
        };
        text.push_str(&format!(
            "client crashes: {} ({}{more}); their operations in flight are info\n",
            results.totals.client_crashes,
            causes.join("; ")
        ));
    }
    for reason in results.reasons.iter().take(5) {
        text.push_str(&format!("  {reason}\n"));
    }
    text.push_str(&format!("run: {}", dir.display()));
    text
}
