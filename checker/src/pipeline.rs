//! Reading and parsing the history (the history crate's streaming reader) on one thread while the
//! analysis runs on another: the two halves cost about the same, so a run is checked in about
//! half the time on two cores. Lines travel in batches of owned [`Item`]s through a bounded channel (and the emptied batches come
//! back, so they are allocated once). The reader thread also turns values into ids, which
//! balances the two halves better. The analysis sees the lines in file order, exactly as if one
//! thread did both ([`read_lines`] with a sink that feeds the analysis, which then interns).

use std::io::Read;
use std::sync::mpsc;

use history::line::ValueText;
use history::reader::{Item, READ_BUFFER_BYTES, read_lines};

use super::analysis::Analysis;
use super::values::{MAX_VALUES, ValueIds};

/// Lines per batch handed to the analysis.
const BATCH_LINES: usize = 256;

/// A batch is handed over early once its lines hold this many records (polls and final reads
/// are long), so that memory in flight stays bounded.
const BATCH_RECORDS: usize = 1 << 14;

/// Batches queued between the threads (bounds memory).
const BATCHES_IN_FLIGHT: usize = 4;

/// Reads `reader` to the end and feeds every line to `analysis`, in order.
pub fn run<R: Read + Send>(reader: R, analysis: &mut Analysis, buffer_bytes: usize) {
    let (batches, received) = mpsc::sync_channel::<Vec<Item>>(BATCHES_IN_FLIGHT);
    let (recycle, recycled) = mpsc::channel::<Vec<Item>>();
    let started = std::thread::scope(|scope| {
        let reader_thread = std::thread::Builder::new()
            .name("history-reader".to_string())
            .spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(BATCH_LINES);
                let mut batch_records = 0;
                let mut ids = ValueIds::default();
                let delivered = read_lines(reader, buffer_bytes, |mut item| {
                    intern_values(&mut ids, &mut item);
                    batch_records += records_in(&item);
                    batch.push(item);
                    if batch.len() < BATCH_LINES && batch_records < BATCH_RECORDS {
                        return true;
                    }
                    batch_records = 0;
                    let empty = recycled
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH_LINES));
                    // A closed channel: the analysis is gone, stop reading.
                    batches.send(std::mem::replace(&mut batch, empty)).is_ok()
                });
                if delivered && !batch.is_empty() {
                    let _ = batches.send(batch);
                }
            });
        let Ok(reader_thread) = reader_thread else {
            return false;
        };
        for mut batch in received {
            for item in &batch {
                analysis.feed(item);
            }
            batch.clear();
            let _ = recycle.send(batch);
        }
        if reader_thread.join().is_err() {
            analysis.feed(&Item::Unreadable(
                "reading the history failed (the reader thread panicked)".to_string(),
            ));
        }
        true
    });
    if !started {
        // The reader went with the thread that could not start: the verdict is unknown.
        analysis.feed(&Item::Unreadable(
            "could not start the history reader thread".to_string(),
        ));
    }
}

/// The reader thread's work alone (read, parse, intern), dropping the lines; returns how many.
pub fn read_only<R: Read>(reader: R) -> std::io::Result<u64> {
    let mut ids = ValueIds::default();
    let mut lines = 0u64;
    let mut failure = None;
    read_lines(reader, READ_BUFFER_BYTES, |mut item| {
        intern_values(&mut ids, &mut item);
        if let Item::Unreadable(reason) = &item {
            failure = Some(reason.clone());
        }
        lines += 1;
        true
    });
    match failure {
        Some(reason) => Err(std::io::Error::other(reason)),
        None => Ok(lines),
    }
}

/// How many records a line carries (to size batches).
fn records_in(item: &Item) -> usize {
    match item {
        Item::Line(line, _) => line.value.records.as_ref().map_or(0, Vec::len),
        _ => 0,
    }
}

/// Turns the values of a line into ids (the analysis then only looks up its per-value state),
/// so that this work happens on the reader's thread.
fn intern_values(ids: &mut ValueIds, item: &mut Item) {
    let Item::Line(line, _) = item else {
        return;
    };
    let mut interned = true;
    let mut intern = |value: &mut ValueText<'static>| match ids.intern(value) {
        Some((id, name)) => *value = ValueText::Interned { id, name },
        None => interned = false,
    };
    if let Some(value) = &mut line.value.value {
        intern(value);
    }
    if let Some(records) = &mut line.value.records {
        for (_, _, value) in records.iter_mut() {
            intern(value);
        }
    }
    if !interned {
        *item = Item::Malformed(format!("more than {MAX_VALUES} distinct values"));
    }
}
