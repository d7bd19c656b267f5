//! Mounts a fault filesystem and takes commands on stdin, to try any program on it by hand.
//!
//! ```sh
//! cargo run -p faultfs --example mount -- BACKING_DIR MOUNT_POINT TAG
//! ```
//! Commands, one a line: `lose`, `lose-tear SECTORS`, `last-write`, `full`, `eio-reads`,
//! `eio-writes`, `slow MILLISECONDS`, `clear`, `quit` (or end of input): unmounts and exits.
#![allow(clippy::print_stdout)]

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use faultfs::{ErrorOn, Fault, FaultFs, Tear};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backing, mount_point, tag] = args.as_slice() else {
        eprintln!("usage: mount BACKING_DIR MOUNT_POINT TAG");
        return ExitCode::from(2);
    };
    let disk = match FaultFs::mount(backing.as_ref(), mount_point.as_ref(), tag) {
        Ok(disk) => disk,
        Err(error) => {
            eprintln!("mount: {error}");
            return ExitCode::from(2);
        }
    };
    println!(
        "mounted {} on {}",
        disk.backing_dir().display(),
        disk.mount_point().display()
    );
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["lose"] => println!("{:?}", disk.lose_unsynced(None)),
            ["lose-tear", sectors] => match sectors.parse() {
                Ok(keep_sectors) => {
                    println!("{:?}", disk.lose_unsynced(Some(Tear { keep_sectors })))
                }
                Err(error) => println!("sectors: {error}"),
            },
            ["last-write"] => println!("{:?}", disk.last_unsynced_write()),
            ["full"] => disk.inject(Fault::DiskFull),
            ["eio-reads"] => disk.inject(Fault::DiskError { on: ErrorOn::Reads }),
            ["eio-writes"] => disk.inject(Fault::DiskError {
                on: ErrorOn::Writes,
            }),
            ["slow", milliseconds] => match milliseconds.parse() {
                Ok(milliseconds) => disk.inject(Fault::SlowDisk {
                    fsync_delay: Duration::from_millis(milliseconds),
                }),
                Err(error) => println!("milliseconds: {error}"),
            },
            ["clear"] => disk.clear_faults(),
            ["quit"] => break,
            [] => {}
            _ => println!("unknown command: {line}"),
        }
        println!("ok {:?}", disk.active_faults());
    }
    match disk.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("unmount: {error}");
            ExitCode::from(1)
        }
    }
}
