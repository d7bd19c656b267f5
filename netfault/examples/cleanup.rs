//! Lists, and with `--remove` removes, the networks killed runs left behind (as `kchaos
//! cleanup` does): `cargo run -p netfault --example cleanup -- [--remove] [TAG_PREFIX]`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let remove = arguments.iter().any(|argument| argument == "--remove");
    let prefix = arguments
        .iter()
        .find(|argument| !argument.starts_with("--"))
        .map_or(netfault::TAG_PREFIX, String::as_str);
    let outcome = if remove {
        netfault::remove_stale(prefix)
    } else {
        netfault::find_stale(prefix)
    };
    match outcome {
        Ok(networks) => {
            for network in &networks {
                println!(
                    "{} {} (run {}): namespaces {:?}, links {:?}",
                    if remove { "removed" } else { "stale" },
                    network.tag,
                    network.run_id.as_deref().unwrap_or("unknown"),
                    network.namespaces,
                    network.links
                );
            }
            println!("{} stale network(s)", networks.len());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
