//! `kchaos bench ...`: benchmarks anyone can rerun, one file per benchmark. They print their
//! numbers (and ratios measured in the same run) rather than asserting on time.

use std::process::ExitCode;

pub mod checker;
pub mod clients;
pub mod cluster;
pub mod consume;
pub mod coordinator;
pub mod fuzz;
pub mod produce;

/// `kchaos bench <which>`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Bench,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Acknowledged coordinator writes per second (fsync'd) and watch notification latency.
    Coordinator(coordinator::CoordinatorBenchArgs),
    /// rdkafka producer and consumer throughput against our broker.
    Produce(produce::ProduceBenchArgs),
    /// acks=all sends through client worker processes vs the same client in process: throughput
    /// and latency, paced and at the maximum rate, ratios measured in one run.
    Clients(clients::ClientsBenchArgs),
    /// Check a generated 10M-operation history: ops/s and peak RSS.
    Checker(checker::CheckerBenchArgs),
    /// Fuzz the broker's and the coordinator's decoders and handlers in process: execs/s and
    /// crashes (their inputs saved).
    Fuzz(fuzz::FuzzBenchArgs),
    /// One partition read back by kcat and by confluent-kafka's Python consumer (issue 15's
    /// finding): where the time goes, optionally against another kchaos build in the same run.
    Consume(consume::ConsumeBenchArgs),
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.which {
        Bench::Coordinator(args) => coordinator::run(args),
        Bench::Produce(args) => produce::run(args),
        Bench::Clients(args) => clients::run(args),
        Bench::Checker(args) => checker::run(args),
        Bench::Fuzz(args) => fuzz::run(args),
        Bench::Consume(args) => consume::run(args),
    }
}
