//! Waiting for a condition with a deadline, polling at a short interval: what tests and the
//! orchestrator use instead of fixed sleeps.

use std::time::{Duration, Instant};

/// The condition did not hold before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited_ms} ms waiting for {what}")]
pub struct WaitTimeout {
    pub what: String,
    pub waited_ms: u128,
}

/// Polls `condition` every `poll_interval` until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    poll_interval: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Result<T, WaitTimeout> {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            return Err(WaitTimeout {
                what: what.to_string(),
                waited_ms: start.elapsed().as_millis(),
            });
        }
        std::thread::sleep(poll_interval);
    }
}

/// The async twin of [`wait_for`], for code on a tokio runtime.
pub async fn wait_for_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    poll_interval: Duration,
    mut condition: F,
) -> Result<T, WaitTimeout>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = condition().await {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            return Err(WaitTimeout {
                what: what.to_string(),
                waited_ms: start.elapsed().as_millis(),
            });
        }
        tokio::time::sleep(poll_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = wait_for(
            "three calls",
            Duration::from_secs(1),
            Duration::ZERO,
            || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        );
        assert_eq!(value.expect("holds"), 3);
    }

    #[test]
    fn times_out_naming_what_it_waited_for() {
        let error = wait_for::<()>(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || None,
        )
        .expect_err("times out");
        assert!(error.to_string().contains("never"), "{error}");
    }
}
