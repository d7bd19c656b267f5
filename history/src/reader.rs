//! The one streaming reader of `history.jsonl`: [`HistoryReader`] reads any `Read` in large
//! chunks and hands out one [`Item`] per line, in file order, with the line parsed into the
//! typed view ([`Line`]). Lines in the writer's layout are scanned in place in the read buffer
//! (the scanner finds their end); any other line is cut at its line break and parsed with serde.
//! The buffer grows to hold the longest line (a final read of a large partition is one line), up
//! to [`LINE_BYTES_MAX`]. Memory is the buffer and one line, whatever the history's length.
//!
//! Every reader of a history uses it: the checker (on a thread of its own), the reports,
//! [`read_history`] (whole [`Op`]s for tests and tools), and anyone reading a stored run.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::HistoryError;
use crate::line::{Line, parse_with_serde};
use crate::op::Op;
use crate::scan::scan_prefix;

/// Size of the read buffer: large reads keep the per-line cost low.
pub const READ_BUFFER_BYTES: usize = 1 << 20;

/// The longest line the reader reads (a final read of tens of millions of records).
pub const LINE_BYTES_MAX: usize = 1 << 31;

/// One line of the history, parsed. Nearly every item is a `Line`, so boxing it would only add
/// an allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Item {
    /// An operation, and the error if its value could not be read (its fields are then empty).
    Line(Line<'static>, Option<String>),
    /// An empty line (still a line, so that line numbers stay right).
    Blank,
    /// A line that is not an operation, with the reason.
    Malformed(String),
    /// The last line, without a line break, is not an operation: the writer was cut off in the
    /// middle of it (a run that died). With the reason.
    Cut(String),
    /// The history could not be read on; nothing follows.
    Unreadable(String),
}

/// Reads a history line by line; see the module's documentation.
pub struct HistoryReader<R> {
    reader: R,
    buffer: Vec<u8>,
    /// The unread bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The underlying reader has no more bytes.
    at_end: bool,
    /// A read failed or a line was too long: nothing more is read.
    stopped: bool,
}

impl<R: Read> HistoryReader<R> {
    /// A reader with a [`READ_BUFFER_BYTES`] buffer.
    pub fn new(reader: R) -> Self {
        Self::with_buffer_bytes(reader, READ_BUFFER_BYTES)
    }

    /// A reader whose buffer starts at `buffer_bytes` (it grows for longer lines).
    pub fn with_buffer_bytes(reader: R, buffer_bytes: usize) -> Self {
        HistoryReader {
            reader,
            buffer: vec![0u8; buffer_bytes.max(1)],
            start: 0,
            end: 0,
            at_end: false,
            stopped: false,
        }
    }

    /// The next line, parsed; `None` at the end of the history (or after [`Item::Unreadable`]).
    pub fn next_item(&mut self) -> Option<Item> {
        self.next_with(scan_one, parse_one, Item::Unreadable)
    }

    /// The next line, handed as text (without its line break) to `slow`, together with whether
    /// it ended with a line break; `fast` may first try the unread bytes in place and take a
    /// line with its line break (returning the bytes it took). `unreadable` turns a read error
    /// into the last item.
    fn next_with<T>(
        &mut self,
        mut fast: impl FnMut(&[u8], bool) -> Option<(T, usize)>,
        mut slow: impl FnMut(&[u8], bool) -> T,
        unreadable: impl FnOnce(String) -> T,
    ) -> Option<T> {
        loop {
            if self.stopped {
                return None;
            }
            if self.start < self.end {
                let window = &self.buffer[self.start..self.end];
                if let Some((item, consumed)) = fast(window, self.at_end) {
                    self.start += consumed;
                    return Some(item);
                }
                match window.iter().position(|byte| *byte == b'\n') {
                    Some(newline) => {
                        let item = slow(&window[..newline], true);
                        self.start += newline + 1;
                        return Some(item);
                    }
                    None if self.at_end => {
                        let item = slow(window, false);
                        self.start = self.end;
                        return Some(item);
                    }
                    None => {}
                }
            }
            if self.at_end {
                return None;
            }
            if let Err(reason) = self.fill() {
                self.stopped = true;
                return Some(unreadable(reason));
            }
        }
    }

    /// Moves the unread bytes to the front, grows the buffer if a line fills it, and reads more.
    fn fill(&mut self) -> Result<(), String> {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buffer.len() {
            if self.buffer.len() >= LINE_BYTES_MAX {
                return Err(format!(
                    "a line longer than {LINE_BYTES_MAX} bytes; stopped reading"
                ));
            }
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        match self.reader.read(&mut self.buffer[self.end..]) {
            Ok(0) => self.at_end = true,
            Ok(read) => self.end += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("reading the history failed: {error}")),
        }
        Ok(())
    }
}

impl<R: Read> Iterator for HistoryReader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.next_item()
    }
}

/// Reads `reader` to the end and hands each line, parsed, to `sink`, which returns whether to
/// go on; returns false if the sink asked to stop.
pub fn read_lines<R: Read>(
    reader: R,
    buffer_bytes: usize,
    mut sink: impl FnMut(Item) -> bool,
) -> bool {
    let mut lines = HistoryReader::with_buffer_bytes(reader, buffer_bytes);
    while let Some(item) = lines.next_item() {
        if !sink(item) {
            return false;
        }
    }
    true
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

/// One whole line (without its line break), any spelling; `terminated` says whether it had a
/// line break (the last line of a history cut short has none).
fn parse_one(text: &[u8], terminated: bool) -> Item {
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Item::Blank;
    }
    let mut line = Line::default();
    match parse_with_serde(text, &mut line) {
        Ok(value_error) => Item::Line(line.into_owned(), value_error),
        Err(reason) if terminated => Item::Malformed(format!("not an operation: {reason}")),
        Err(reason) => Item::Cut(format!("not an operation: {reason}")),
    }
}

/// Parses one line (without its newline) into `line`: the scanner for the writer's layout,
/// else serde. `Ok(Some(error))`: the line is an operation but its value could not be read (it
/// is left empty). `Err`: the reason the line is not an operation.
pub fn parse_line<'a>(text: &'a [u8], line: &mut Line<'a>) -> Result<Option<String>, String> {
    let mut scanned = Line::default();
    if crate::scan::scan_line(text, &mut scanned).is_some() {
        *line = scanned;
        return Ok(None);
    }
    parse_with_serde(text, line)
}

/// Reads a history file back, one typed [`Op`] (with its whole value) per non-empty line. A
/// line that is not a valid operation is an `Err` naming its line number; iteration can go on
/// after it.
pub fn read_history(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Op, HistoryError>>, HistoryError> {
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let path = path.to_path_buf();
    let mut lines = HistoryReader::new(file);
    let mut line_number = 0u64;
    Ok(std::iter::from_fn(move || {
        loop {
            line_number += 1;
            let parsed = lines.next_with(
                |_, _| None,
                |text, _| {
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    if text.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    Some(serde_json::from_slice::<Op>(text).map_err(|error| {
                        HistoryError::Malformed {
                            path: path.clone(),
                            line: line_number,
                            reason: error.to_string(),
                        }
                    }))
                },
                |reason| {
                    Some(Err(HistoryError::Io {
                        path: path.clone(),
                        source: std::io::Error::other(reason),
                    }))
                },
            )?;
            if parsed.is_some() {
                return parsed;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;

    use super::*;
    use crate::line::{OpName, ValueText};
    use crate::op::{OpType, Process};

    fn items(text: &str, buffer_bytes: usize) -> Vec<Item> {
        HistoryReader::with_buffer_bytes(text.as_bytes(), buffer_bytes).collect()
    }

    #[test]
    fn parses_a_send_ok_with_borrowed_strings() {
        let text = br#"{"index":1,"time_ns":3400121,"process":3,"type":"ok","f":"send","value":{"key":"k7","value":"3-17","partition":1,"offset":40}}"#;
        let mut line = Line::default();
        assert_eq!(parse_line(text, &mut line), Ok(None));
        assert_eq!(line.process, Process::Client(3));
        assert_eq!(line.op_type, OpType::Ok);
        assert_eq!(line.f, OpName::Send);
        assert_eq!(
            line.value.value,
            Some(ValueText::Key {
                process: 3,
                sequence: 17
            })
        );
        assert_eq!(line.value.partition, Some(1));
        assert_eq!(line.value.offset, Some(40));
        // Through serde (spaces defeat the scanner), strings are still borrowed.
        let spaced = br#"{"index":1, "time_ns":3,"process":3,"type":"ok","f":"send","value":{"value":"a-b","error":"x\ty"}}"#;
        let mut line = Line::default();
        assert_eq!(parse_line(spaced, &mut line), Ok(None));
        assert!(matches!(
            line.value.value,
            Some(ValueText::Other(Cow::Borrowed("a-b")))
        ));
        assert_eq!(line.value.error.as_deref(), Some("x\ty"));
    }

    #[test]
    fn an_odd_value_of_an_uninterpreted_operation_is_skipped() {
        let text = br#"{"index":2,"time_ns":5,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-2","partition":"all"}}"#;
        let mut line = Line::default();
        assert!(parse_line(text, &mut line).unwrap().is_some());
        assert_eq!(line.process, Process::Nemesis);
        assert_eq!(line.f.as_str(), "kill");
    }

    #[test]
    fn an_error_that_is_not_a_string_is_skipped_by_serde_too() {
        let text = br#"{"index":2, "time_ns":5,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-2","error":{"code":[1,2]}}}"#;
        let mut line = Line::default();
        assert_eq!(parse_line(text, &mut line), Ok(None));
        assert_eq!(line.value.node.as_deref(), Some("broker-2"));
        assert_eq!(line.value.error, None);
    }

    #[test]
    fn lines_of_any_length_and_spelling_come_out_in_order() {
        let long_poll = format!(
            r#"{{"index":1,"time_ns":2,"process":9,"type":"ok","f":"poll","value":{{"records":[{}]}}}}"#,
            (0..500)
                .map(|offset| format!(r#"[0,{offset},"1-{offset}"]"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let text = format!(
            "{}\n\n{long_poll}\r\n{}\nnot json\n{}",
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"poll","value":{}}"#,
            r#"{ "index":2,"time_ns":3,"process":1,"type":"invoke","f":"poll","value":{}}"#,
            r#"{"index":3,"time_ns":4,"process":1,"type":"ok","f":"poll","value":{"records":[]}}"#,
        );
        // A buffer far smaller than a line: it grows.
        for buffer_bytes in [16, READ_BUFFER_BYTES] {
            let items = items(&text, buffer_bytes);
            assert_eq!(items.len(), 6, "{items:?}");
            assert!(matches!(&items[0], Item::Line(line, None) if line.index == 0));
            assert!(matches!(items[1], Item::Blank));
            assert!(
                matches!(&items[2], Item::Line(line, None) if line.value.records.as_ref().map(Vec::len) == Some(500))
            );
            assert!(matches!(&items[3], Item::Line(line, None) if line.index == 2));
            assert!(
                matches!(&items[4], Item::Malformed(reason) if reason.starts_with("not an operation"))
            );
            // The last line has no line break but is whole.
            assert!(matches!(&items[5], Item::Line(line, None) if line.index == 3));
        }
    }

    #[test]
    fn a_last_line_cut_short_is_told_apart_from_a_malformed_one() {
        let text = concat!(
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"poll","value":{}}"#,
            "\n",
            r#"{"index":1,"time_ns":2,"process":1,"type":"ok","f":"po"#
        );
        let items = items(text, 64);
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Item::Cut(reason) if reason.starts_with("not an operation")));
    }

    #[test]
    fn a_read_error_is_the_last_item() {
        struct Failing(bool);
        impl Read for Failing {
            fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let line = b"{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"poll\",\"value\":{}}\n";
                buffer[..line.len()].copy_from_slice(line);
                Ok(line.len())
            }
        }
        let items: Vec<Item> = HistoryReader::new(Failing(false)).collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(matches!(&items[1], Item::Unreadable(reason) if reason.contains("disk on fire")));
    }

    #[test]
    fn a_malformed_line_names_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(
            &path,
            "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"poll\",\"value\":{}}\n\nnot json\n{\"index\":1,\"time_ns\":1,\"process\":\"nobody\",\"type\":\"ok\",\"f\":\"poll\",\"value\":{}}\n",
        )
        .unwrap();
        let results: Vec<_> = read_history(&path).unwrap().collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok());
        assert!(matches!(
            results[1],
            Err(HistoryError::Malformed { line: 3, .. })
        ));
        assert!(matches!(
            &results[2],
            Err(HistoryError::Malformed { line: 4, reason, .. }) if reason.contains("nobody")
        ));
    }

    #[test]
    fn every_line_the_writer_writes_takes_the_fast_path() {
        use serde_json::json;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let writer = crate::HistoryWriter::create(&path).unwrap();
        let client = Process::Client(3);
        let lines = [
            (
                client,
                OpType::Invoke,
                "send",
                json!({"key": "k", "value": "3-0"}),
            ),
            (
                client,
                OpType::Ok,
                "send",
                json!({"key": "k", "value": "3-0", "partition": 0, "offset": 0}),
            ),
            (
                client,
                OpType::Info,
                "send",
                json!({"key": "k", "value": "3-1", "partition": 0, "error": "Local: Message timed out"}),
            ),
            (
                Process::Nemesis,
                OpType::Info,
                "kill",
                json!({"node": "broker-2", "why": "ünïcode", "error": "no such process"}),
            ),
            (
                Process::Nemesis,
                OpType::Info,
                "heal",
                json!({"node": "all", "why": "end", "healed": [["broker-2", "start"]]}),
            ),
            (Process::Client(9), OpType::Invoke, "poll", json!({})),
            (
                Process::Client(9),
                OpType::Ok,
                "poll",
                json!({"records": [[0, 0, "3-0"], [0, 1, "other value"]]}),
            ),
            (
                Process::Client(9),
                OpType::Ok,
                "assign",
                json!({"positions": [[0, -1], [1, 5]]}),
            ),
            (
                Process::Client(20),
                OpType::Ok,
                "final-read",
                json!({"partition": 0, "log_start_offset": 0, "high_watermark": 2,
                       "records": [[0, 0, "3-0"]], "complete": true}),
            ),
        ];
        for (process, op_type, f, value) in lines {
            writer.record(process, op_type, f, value).unwrap();
        }
        writer.close().unwrap();
        let text = std::fs::read(&path).unwrap();
        for line in text
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
        {
            let mut scanned = Line::default();
            assert!(
                crate::scan::scan_line(line, &mut scanned).is_some(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
