//! The live progress line on stderr (indicatif; hidden when stderr is not a terminal): phase,
//! elapsed time, sends ok/fail/info, polls, and the fault in force.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::lock::lock;
use crate::recorder::Recorder;

/// A progress line that refreshes itself until dropped or finished.
pub struct Progress {
    bar: ProgressBar,
    phase: Arc<Mutex<String>>,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the line; `visible = false` (or a stderr that is not a terminal) hides it.
    pub fn start(recorder: Recorder, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        let phase = Arc::new(Mutex::new("setup".to_string()));
        let refresher = {
            let bar = bar.clone();
            let phase = Arc::clone(&phase);
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_millis(200));
                loop {
                    ticker.tick().await;
                    let phase = lock(&phase).clone();
                    bar.set_message(line(&phase, &recorder));
                }
            })
        };
        Progress {
            bar,
            phase,
            refresher: Some(refresher),
        }
    }

    /// Shows the run's current phase (setup, faults, heal, final read, check, teardown).
    pub fn set_phase(&self, phase: &str) {
        *lock(&self.phase) = phase.to_string();
    }

    /// Prints a line above the progress line.
    pub fn println(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// Removes the line.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(refresher) = self.refresher.take() {
            refresher.abort();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The text of the line.
fn line(phase: &str, recorder: &Recorder) -> String {
    let counts = recorder.counters();
    let fault = recorder
        .current_fault()
        .unwrap_or_else(|| "none".to_string());
    format!(
        "{phase} | sends ok {} fail {} info {} | polls {} ({} records) | fault: {fault}",
        counts.sends_ok, counts.sends_fail, counts.sends_info, counts.polls, counts.records_polled
    )
}
