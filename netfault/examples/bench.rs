//! How long building a node network, applying and healing a grudge, and tearing down take.
//!
//! `cargo run --release -p netfault --example bench -- [ROUNDS] [NODES]` (as root; defaults: 20
//! rounds of 4 nodes). Each round builds a network, applies `isolate`, heals, applies `halves`,
//! heals, and tears it down; the median, min and max of each step are printed in milliseconds.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use netfault::{Network, grudge};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const STEPS: [&str; 6] = [
    "create",
    "apply isolate",
    "heal",
    "apply halves",
    "heal",
    "teardown",
];

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize, default: usize| {
        arguments
            .get(index)
            .map_or(Ok(default), |text| text.parse::<usize>())
    };
    let (Ok(rounds), Ok(node_count)) = (number(0, 20), number(1, 4)) else {
        eprintln!("usage: bench [ROUNDS] [NODES]");
        return ExitCode::from(2);
    };
    match run(rounds.max(1), node_count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(rounds: usize, node_count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let nodes: Vec<String> = (1..=node_count).map(|index| format!("n{index}")).collect();
    let rng = &mut ChaCha8Rng::seed_from_u64(1);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); STEPS.len()];
    for round in 0..rounds {
        let mut timed = Vec::with_capacity(STEPS.len());
        let start = Instant::now();
        let network = Network::create(&format!("bench-{round}"), &nodes)?;
        timed.push(start.elapsed());
        let target = &nodes[round % nodes.len()];
        for grudge in [
            grudge::isolate(&nodes, target)?,
            netfault::Grudge::new(),
            grudge::halves(&nodes, rng)?,
            netfault::Grudge::new(),
        ] {
            let start = Instant::now();
            network.apply(&grudge)?;
            timed.push(start.elapsed());
        }
        let start = Instant::now();
        network.teardown()?;
        timed.push(start.elapsed());
        for (step, duration) in timed.into_iter().enumerate() {
            samples[step].push(duration);
        }
    }
    println!("{rounds} rounds, {node_count} nodes (milliseconds: median, min, max)");
    for (step, durations) in STEPS.iter().zip(&mut samples) {
        durations.sort();
        let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
        println!(
            "{step:>14}: {:7.1} {:7.1} {:7.1}",
            millis(durations[durations.len() / 2]),
            millis(durations[0]),
            millis(durations[durations.len() - 1]),
        );
    }
    Ok(())
}
