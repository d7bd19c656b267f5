//! Whether a checked run passes, as `kchaos workload` decides its exit code: the checker's
//! result matches the workload's expectation, and at least one send was acknowledged (a run
//! without any proves nothing about loss). The page's badge, the JUnit `expectation` case and
//! the index all say the same thing.

use harness::checker::Results;

/// How a checked run compares with its workload's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    AsExpected,
    /// The result contradicts the expectation (exit 1).
    Contradicted,
    /// The result matches, but no send was acknowledged: it proves nothing (exit 1).
    ProvesNothing,
}

impl Outcome {
    /// The outcome of `results`, for a workload with `producers` producers (`None`: unknown,
    /// taken as some).
    pub fn of(results: &Results, producers: Option<i64>) -> Outcome {
        if !results.matches_expectation {
            Outcome::Contradicted
        } else if producers != Some(0) && results.totals.sends_ok == 0 {
            Outcome::ProvesNothing
        } else {
            Outcome::AsExpected
        }
    }

    /// Whether CI should pass it.
    pub fn passed(self) -> bool {
        self == Outcome::AsExpected
    }

    /// One line for people.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::AsExpected => "as the workload expects",
            Outcome::Contradicted => "contradicts the workload's expectation",
            Outcome::ProvesNothing => "proves nothing: no send was acknowledged",
        }
    }
}

/// `clients.producers` of a workload.toml.
pub fn producers(workload: Option<&toml::Table>) -> Option<i64> {
    workload?.get("clients")?.get("producers")?.as_integer()
}
