//! A hand-written scanner for the exact line layout that [`HistoryWriter`] emits
//! (`{"index":..,"time_ns":..,"process":..,"type":..,"f":..,"value":{..}}`, no spaces): the
//! reader's hot path. It returns `None` for anything else (other key orders, whitespace,
//! escaped strings, a field of an unexpected type), and the caller then parses the line with
//! serde, which accepts every valid spelling and gives the precise error for invalid ones.
//! So this scanner only has to be right on what it accepts, never complete. It produces lines
//! that own their few strings (`f` of a rare operation, nemesis fields, odd values) so that they
//! can go to another thread without a copy.

use std::borrow::Cow;

use crate::line::{Fields, Line, OpName, Text, ValueText};
use crate::op::{OpType, Process};
#[cfg(doc)]
use crate::writer::HistoryWriter;

/// Records vectors start this large (polls return a few to a few hundred records).
const RECORDS_CAPACITY: usize = 64;

/// Nesting limit when skipping values the checker does not read.
const SKIP_DEPTH_MAX: usize = 64;

/// Scans one line in the writer's layout into `line`, or `None` to let serde decide (then
/// `line` may be partly written). Filling the caller's `line` in place avoids moving it.
pub(crate) fn scan_line(text: &[u8], line: &mut Line<'static>) -> Option<()> {
    (scan_prefix(text, line)? == text.len()).then_some(())
}

/// Scans one operation at the start of `text` (which may go on with more lines) and returns
/// how many bytes it took; the caller checks what follows.
pub fn scan_prefix(text: &[u8], line: &mut Line<'static>) -> Option<usize> {
    let mut cursor = Cursor {
        bytes: text,
        position: 0,
    };
    cursor.literal(b"{\"index\":")?;
    line.index = cursor.unsigned()?;
    cursor.literal(b",\"time_ns\":")?;
    line.time_ns = cursor.unsigned()?;
    cursor.literal(b",\"process\":")?;
    line.process = if cursor.peek()? == b'"' {
        if cursor.literal(b"\"nemesis\"").is_some() {
            Process::Nemesis
        } else {
            cursor.literal(b"\"harness\"")?;
            Process::Harness
        }
    } else {
        Process::Client(cursor.unsigned()?)
    };
    cursor.literal(b",\"type\":")?;
    line.op_type = if cursor.literal(b"\"invoke\"").is_some() {
        OpType::Invoke
    } else if cursor.literal(b"\"ok\"").is_some() {
        OpType::Ok
    } else if cursor.literal(b"\"fail\"").is_some() {
        OpType::Fail
    } else {
        cursor.literal(b"\"info\"")?;
        OpType::Info
    };
    cursor.literal(b",\"f\":")?;
    line.f = if cursor.literal(b"\"send\",").is_some() {
        cursor.position -= 1;
        OpName::Send
    } else if cursor.literal(b"\"poll\",").is_some() {
        cursor.position -= 1;
        OpName::Poll
    } else {
        OpName::from_text(Cow::Owned(cursor.string()?.to_string()))
    };
    cursor.literal(b",\"value\":")?;
    cursor.fields(&mut line.value)?;
    cursor.byte(b'}')?;
    Some(cursor.position)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    /// One expected byte.
    #[inline]
    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.position += 1)
    }

    #[inline]
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let end = self.position.checked_add(expected.len())?;
        (self.bytes.get(self.position..end)? == expected).then(|| self.position = end)
    }

    /// JSON's unsigned integer: `0` or a digit 1-9 followed by digits, fitting a u64.
    #[inline]
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.position;
        let mut value: u64 = 0;
        while let Some(byte) = self.bytes.get(self.position) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
            self.position += 1;
        }
        let digits = self.position - start;
        if digits == 0 || (digits > 1 && self.bytes.get(start) == Some(&b'0')) {
            return None;
        }
        // A fraction or exponent is not an integer: leave it to serde.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(value)
    }

    #[inline]
    fn signed(&mut self) -> Option<i64> {
        if self.peek()? == b'-' {
            self.position += 1;
            let magnitude = self.unsigned()?;
            if magnitude == 0 {
                return None;
            }
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(self.unsigned()?).ok()
        }
    }

    /// An object key without escapes, as bytes (keys are compared, never kept).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.byte(b'"')?;
        let start = self.position;
        let length = self
            .bytes
            .get(start..)?
            .iter()
            .position(|byte| *byte == b'"' || *byte == b'\\')?;
        let end = start + length;
        (self.bytes[end] == b'"').then(|| self.position = end + 1)?;
        self.bytes.get(start..end)
    }

    /// A string without escapes or control characters, borrowed from the line.
    fn string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.position + 1;
        let length = self
            .bytes
            .get(start..)?
            .iter()
            .position(|byte| *byte == b'"' || *byte == b'\\' || *byte < 0x20)?;
        let end = start + length;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.position = end + 1;
        // Only the strings the checker keeps are checked for UTF-8, not the whole line.
        std::str::from_utf8(self.bytes.get(start..end)?).ok()
    }

    /// A produced value: `"<digits>-<digits>"` straight into numbers, anything else as a string
    /// (classified exactly as [`ValueText::from_text`] would).
    fn value_text(&mut self) -> Option<ValueText<'static>> {
        let start = self.position;
        if self.byte(b'"').is_some()
            && let Some(process) = self.unsigned()
            && self.byte(b'-').is_some()
            && let Some(sequence) = self.unsigned()
            && self.byte(b'"').is_some()
        {
            return Some(ValueText::Key { process, sequence });
        }
        self.position = start;
        Some(ValueText::from_text(Cow::Owned(self.string()?.to_string())))
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true").is_some() {
            Some(true)
        } else {
            self.literal(b"false").map(|()| false)
        }
    }

    /// The operation's value: an object whose known keys may come in any order.
    fn fields(&mut self, fields: &mut Fields<'static>) -> Option<()> {
        self.byte(b'{')?;
        if self.byte(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.byte(b':')?;
            match key {
                b"value" => fields.value = Some(self.value_text()?),
                b"partition" => fields.partition = Some(i32::try_from(self.signed()?).ok()?),
                b"offset" => fields.offset = Some(self.signed()?),
                b"records" => fields.records = Some(self.records()?),
                b"complete" => fields.complete = Some(self.boolean()?),
                b"positions" => fields.positions = Some(self.positions()?),
                b"group" => fields.group = Some(Text(Cow::Owned(self.string()?.to_string()))),
                b"partitions" => fields.partitions = Some(self.partition_list()?),
                b"committed" => fields.committed = Some(self.positions()?),
                b"offsets" => fields.offsets = Some(self.positions()?),
                b"node" => fields.node = Some(Text(Cow::Owned(self.string()?.to_string()))),
                b"why" => fields.why = Some(Text(Cow::Owned(self.string()?.to_string()))),
                b"process" => fields.client_process = Some(self.unsigned()?),
                b"cause" => fields.cause = Some(Text(Cow::Owned(self.string()?.to_string()))),
                // Like serde's `text_or_nothing`: a string, or nothing for any other value.
                b"error" if self.peek()? == b'"' => {
                    fields.error = Some(Text(Cow::Owned(self.string()?.to_string())));
                }
                b"error" => {
                    self.skip_value(0)?;
                    fields.error = None;
                }
                b"topology" => {
                    fields.topology = Some(Text(Cow::Owned(self.string()?.to_string())));
                }
                b"what" => fields.what = Some(Text(Cow::Owned(self.string()?.to_string()))),
                // A partition's grudge (nemesis lines are few): serde reads it.
                b"grudge" => return None,
                _ => self.skip_value(0)?,
            }
            if self.byte(b',').is_none() {
                return self.byte(b'}');
            }
        }
    }

    /// `[[partition,offset,"value"],...]`
    fn records(&mut self) -> Option<Vec<(i32, i64, ValueText<'static>)>> {
        let mut records = Vec::with_capacity(RECORDS_CAPACITY);
        self.byte(b'[')?;
        if self.byte(b']').is_some() {
            return Some(records);
        }
        loop {
            self.byte(b'[')?;
            let partition = i32::try_from(self.signed()?).ok()?;
            self.byte(b',')?;
            let offset = self.signed()?;
            self.byte(b',')?;
            let value = self.value_text()?;
            self.byte(b']')?;
            records.push((partition, offset, value));
            if self.byte(b',').is_none() {
                self.byte(b']')?;
                return Some(records);
            }
        }
    }

    /// `[[partition,offset],...]`
    fn positions(&mut self) -> Option<Vec<(i32, i64)>> {
        let mut positions = Vec::new();
        self.byte(b'[')?;
        if self.byte(b']').is_some() {
            return Some(positions);
        }
        loop {
            self.byte(b'[')?;
            let partition = i32::try_from(self.signed()?).ok()?;
            self.byte(b',')?;
            let offset = self.signed()?;
            self.byte(b']')?;
            positions.push((partition, offset));
            if self.byte(b',').is_none() {
                self.byte(b']')?;
                return Some(positions);
            }
        }
    }

    /// `[partition,...]`
    fn partition_list(&mut self) -> Option<Vec<i32>> {
        let mut partitions = Vec::new();
        self.byte(b'[')?;
        if self.byte(b']').is_some() {
            return Some(partitions);
        }
        loop {
            partitions.push(i32::try_from(self.signed()?).ok()?);
            if self.byte(b',').is_none() {
                self.byte(b']')?;
                return Some(partitions);
            }
        }
    }

    /// Skips a value no reader uses: strings (escapes allowed), numbers, literals,
    /// arrays and objects (nested at most [`SKIP_DEPTH_MAX`] deep).
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > SKIP_DEPTH_MAX {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                self.position += 1;
                if self.byte(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_string()?;
                    self.byte(b':')?;
                    self.skip_value(depth + 1)?;
                    if self.byte(b',').is_none() {
                        return self.byte(b'}');
                    }
                }
            }
            b'[' => {
                self.position += 1;
                if self.byte(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if self.byte(b',').is_none() {
                        return self.byte(b']');
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let start = self.position;
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
                    self.position += 1;
                }
                // Let serde judge anything but plain integers and decimals.
                std::str::from_utf8(self.bytes.get(start..self.position)?)
                    .ok()?
                    .parse::<f64>()
                    .ok()
                    .map(|_| ())
            }
            _ => None,
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.byte(b'"')?;
        loop {
            let byte = self.peek()?;
            self.position += 1;
            match byte {
                b'"' => return Some(()),
                b'\\' => self.position += 1,
                0..0x20 => return None,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::line::parse_with_serde;

    #[test]
    fn scans_what_the_writer_writes_like_serde_does() {
        let lines: [&[u8]; 12] = [
            br#"{"index":0,"time_ns":1200311,"process":3,"type":"invoke","f":"send","value":{"key":"k7","value":"3-17"}}"#,
            br#"{"index":1,"time_ns":3400121,"process":3,"type":"ok","f":"send","value":{"key":"k7","value":"3-17","partition":1,"offset":40}}"#,
            br#"{"index":2,"time_ns":3500000,"process":"nemesis","type":"info","f":"kill","value":{"node":"broker-2","why":"leader of t-1","extra":[1,{"a":null},-2.5e3,"x\"y"],"error":"gone"}}"#,
            br#"{"index":3,"time_ns":3900000,"process":9,"type":"ok","f":"poll","value":{"records":[[1,40,"3-17"],[1,41,"4-2"]]}}"#,
            br#"{"index":4,"time_ns":4000000,"process":9,"type":"ok","f":"assign","value":{"positions":[[1,-1],[2,0]]}}"#,
            br#"{"index":5,"time_ns":5000000,"process":12,"type":"ok","f":"final-read","value":{"partition":0,"log_start_offset":0,"high_watermark":0,"records":[],"complete":true}}"#,
            br#"{"index":6,"time_ns":6000000,"process":3,"type":"info","f":"send","value":{"value":"3-18","error":{"code":7}}}"#,
            br#"{"index":7,"time_ns":7000000,"process":9,"type":"ok","f":"subscribe","value":{"group":"g","topics":["t"]}}"#,
            br#"{"index":8,"time_ns":8000000,"process":9,"type":"ok","f":"assign","value":{"group":"g","partitions":[0,2],"committed":[[0,41]]}}"#,
            br#"{"index":9,"time_ns":9000000,"process":9,"type":"ok","f":"commit","value":{"group":"g","offsets":[[0,45],[2,3]]}}"#,
            br#"{"index":10,"time_ns":10000000,"process":9,"type":"ok","f":"revoke","value":{"group":"g","partitions":[]}}"#,
            br#"{"index":7,"time_ns":7000000,"process":"harness","type":"info","f":"client-crash","value":{"process":4,"pid":77,"cause":"signal 11 (SIGSEGV)","in_flight":2}}"#,
        ];
        for text in lines {
            let mut scanned = Line::default();
            scan_line(text, &mut scanned).unwrap();
            let parsed = serde_json::from_slice::<Line<'_>>(text).unwrap();
            assert_eq!(format!("{scanned:?}"), format!("{parsed:?}"));
        }
    }

    #[test]
    fn a_partition_goes_to_serde_and_keeps_its_grudge() {
        let partition: &[u8] = br#"{"index":7,"time_ns":7000000,"process":"nemesis","type":"invoke","f":"partition","value":{"grudge":{"broker-1":["broker-2","coordinator"],"broker-2":["broker-1"]},"node":"broker-1","topology":"isolate","why":"leader of t-0"}}"#;
        assert!(scan_line(partition, &mut Line::default()).is_none());
        let parsed = serde_json::from_slice::<Line<'_>>(partition).unwrap();
        let grudge = parsed.value.grudge.unwrap();
        assert_eq!(grudge["broker-1"], ["broker-2", "coordinator"]);
        assert_eq!(parsed.value.topology.as_deref(), Some("isolate"));
        let heal: &[u8] = br#"{"index":8,"time_ns":8000000,"process":"nemesis","type":"info","f":"heal","value":{"what":"network","why":"heal of partition isolate broker-1"}}"#;
        let mut scanned = Line::default();
        scan_line(heal, &mut scanned).unwrap();
        assert_eq!(scanned.value.what.as_deref(), Some("network"));
        let parsed = serde_json::from_slice::<Line<'_>>(heal).unwrap();
        assert_eq!(format!("{scanned:?}"), format!("{parsed:?}"));
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        let lines: [&[u8]; 8] = [
            br#"{ "index":0,"time_ns":1,"process":3,"type":"invoke","f":"send","value":{}}"#,
            br#"{"time_ns":1,"index":0,"process":3,"type":"invoke","f":"send","value":{}}"#,
            br#"{"index":0,"time_ns":1,"process":3,"type":"invoke","f":"send","value":{"value":"a\nb"}}"#,
            br#"{"index":0,"time_ns":1,"process":3,"type":"invoke","f":"send","value":{}} x"#,
            br#"{"index":01,"time_ns":1,"process":3,"type":"invoke","f":"send","value":{}}"#,
            br#"{"index":0,"time_ns":1.5,"process":3,"type":"invoke","f":"send","value":{}}"#,
            br#"{"index":0,"time_ns":1,"process":3,"type":"invoke","f":"send","value":{"partition":"1"}}"#,
            br#"{"index":0,"time_ns":1,"process":3,"type":"invoke","f":"send","value":{"offset":99999999999999999999}}"#,
        ];
        for text in lines {
            assert!(
                scan_line(text, &mut Line::default()).is_none(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        // serde still reads the valid ones.
        assert_eq!(parse_with_serde(lines[0], &mut Line::default()), Ok(None));
        assert_eq!(parse_with_serde(lines[1], &mut Line::default()), Ok(None));
        assert_eq!(parse_with_serde(lines[2], &mut Line::default()), Ok(None));
        assert!(parse_with_serde(lines[3], &mut Line::default()).is_err());
    }
}
