//! Reading and parsing the history on one thread while the analysis runs on another: the two
//! halves cost about the same, so a run is checked in about half the time on two cores. Lines
//! travel in batches of owned [`Item`]s through a bounded channel (and the emptied batches come
//! back, so they are allocated once). The reader thread also turns values into ids, which
//! balances the two halves better. The analysis sees the lines in file order, exactly as if one
//! thread did both ([`read_lines`] with a sink that feeds the analysis, which then interns).

use std::io::Read;
use std::sync::mpsc;

use super::analysis::Analysis;
use super::parse::{Line, ValueText, parse_with_serde};
use super::scan::scan_prefix;
use super::values::{MAX_VALUES, ValueIds};

/// Size of the read buffer: large reads keep the per-line cost low.
pub const READ_BUFFER_BYTES: usize = 1 << 20;

/// The longest line the checker reads (a final read of tens of millions of records).
const LINE_BYTES_MAX: usize = 1 << 31;

/// Lines per batch handed to the analysis.
const BATCH_LINES: usize = 256;

/// A batch is handed over early once its lines hold this many records (polls and final reads
/// are long), so that memory in flight stays bounded.
const BATCH_RECORDS: usize = 1 << 14;

/// Batches queued between the threads (bounds memory).
const BATCHES_IN_FLIGHT: usize = 4;

/// One line of the history, parsed. Nearly every item is a `Line`, so boxing it would only add
/// an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum Item {
    /// An operation, and the error if its value could not be read.
    Line(Line<'static>, Option<String>),
    /// An empty line (still counted, so that line numbers stay right).
    Blank,
    /// A line that is not an operation, with the reason.
    Malformed(String),
    /// The history could not be read on (line 0 in results).
    Unreadable(String),
}

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

/// Reads lines from `reader` and hands each, parsed, to `sink` (which returns whether to go
/// on; `read_lines` returns false if the sink asked it to stop): lines in the writer's layout
/// are scanned in place in the read buffer (the scanner finds their end); any other line is cut
/// at its line break and parsed with serde. The buffer grows to hold the longest line (a final
/// read of a large partition is one line), up to [`LINE_BYTES_MAX`].
pub fn read_lines<R: Read>(
    mut reader: R,
    buffer_bytes: usize,
    mut sink: impl FnMut(Item) -> bool,
) -> bool {
    let mut buffer = vec![0u8; buffer_bytes.max(1)];
    let (mut start, mut end, mut at_end) = (0, 0, false);
    loop {
        while start < end {
            let window = &buffer[start..end];
            if let Some((item, consumed)) = scan_one(window, at_end) {
                if !sink(item) {
                    return false;
                }
                start += consumed;
                continue;
            }
            match window.iter().position(|byte| *byte == b'\n') {
                Some(newline) => {
                    if !sink(parse_one(&window[..newline])) {
                        return false;
                    }
                    start += newline + 1;
                }
                None if at_end => {
                    if !sink(parse_one(window)) {
                        return false;
                    }
                    start = end;
                }
                None => break,
            }
        }
        if at_end {
            return true;
        }
        buffer.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buffer.len() {
            if buffer.len() >= LINE_BYTES_MAX {
                return sink(Item::Unreadable(format!(
                    "a line longer than {LINE_BYTES_MAX} bytes; stopped reading"
                )));
            }
            buffer.resize(buffer.len() * 2, 0);
        }
        match reader.read(&mut buffer[end..]) {
            Ok(0) => at_end = true,
            Ok(read) => end += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                return sink(Item::Unreadable(format!(
                    "reading the history failed: {error}"
                )));
            }
        }
    }
}

/// The fast path: one line in the writer's layout at the start of `window`, and the bytes it
/// took with its line break; `None` to cut the line and parse it with [`parse_one`].
fn scan_one(window: &[u8], at_end: bool) -> Option<(Item, usize)> {
    let mut line = Line::default();
    let length = scan_prefix(window, &mut line)?;
    let consumed = match window.get(length) {
        Some(b'\n') => length + 1,
        None if at_end => length,
        _ => return None,
    };
    Some((Item::Line(line, None), consumed))
}

/// One whole line (without its line break), any spelling.
fn parse_one(text: &[u8]) -> Item {
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Item::Blank;
    }
    let mut line = Line::default();
    match parse_with_serde(text, &mut line) {
        Ok(value_error) => Item::Line(line.into_owned(), value_error),
        Err(reason) => Item::Malformed(format!("not an operation: {reason}")),
    }
}
