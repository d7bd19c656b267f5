//! Mounts a fault filesystem and takes commands on stdin, to try any program on it by hand.
//!
//! ```sh
//! cargo run -p faultfs --example mount -- BACKING_DIR MOUNT_POINT TAG [any-fsync]
//! ```
//! (`any-fsync`: entries become durable with any fsync, see `EntryDurability::AnyFsync`.)
//! Commands, one a line: `lose`, `lose-tear SECTORS`, `last-write`, `full`, `eio-reads`,
//! `eio-writes`, `slow MILLISECONDS`, `clear`, `quit` (or end of input): unmounts and exits.
#![allow(clippy::print_stdout)]

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use faultfs::{EntryDurability, ErrorOn, Fault, FaultFs, MountOptions, Tear};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (backing, mount_point, tag, entry_durability) = match args.as_slice() {
        [backing, mount_point, tag] => (backing, mount_point, tag, EntryDurability::DirectoryFsync),
        [backing, mount_point, tag, any] if any == "any-fsync" => {
            (backing, mount_point, tag, EntryDurability::AnyFsync)
        }
        _ => {
            eprintln!("usage: mount BACKING_DIR MOUNT_POINT TAG [any-fsync]");
            return ExitCode::from(2);
        }
    };
    let options = MountOptions {
        entry_durability,
        ..MountOptions::default()
    };
    let disk = match FaultFs::mount_with(backing.as_ref(), mount_point.as_ref(), tag, &options) {
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
