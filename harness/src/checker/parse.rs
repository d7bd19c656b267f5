//! Parsing one history line for the checker without building a `serde_json::Value`: a typed,
//! borrowed view ([`Line`]) whose `value` holds only the fields the checker reads (strings
//! borrowed from the line unless they contain escapes); unknown fields are skipped. The
//! hand-written `scan` handles the writer's own layout; serde handles any other spelling.
//!
//! Operations the checker does not interpret (nemesis faults, anything new) may carry values of
//! any shape: if the strict parse fails, [`parse_with_serde`] retries with the value ignored and
//! reports whether the strict parse had failed, so that the caller can decide whether the line
//! is malformed (it is for `send`, `poll`, `assign` and `final-read`).

use std::borrow::Cow;

use serde::Deserialize;

use super::values::{ValueId, ValueName};
use crate::history::{OpType, Process};

/// An operation's `f`: the four the checker interprets, or any other name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpName<'a> {
    Send,
    Poll,
    Assign,
    FinalRead,
    Other(Cow<'a, str>),
}

impl<'a> OpName<'a> {
    pub fn from_text(text: Cow<'a, str>) -> Self {
        match &*text {
            "send" => OpName::Send,
            "poll" => OpName::Poll,
            "assign" => OpName::Assign,
            "final-read" => OpName::FinalRead,
            _ => OpName::Other(text),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            OpName::Send => "send",
            OpName::Poll => "poll",
            OpName::Assign => "assign",
            OpName::FinalRead => "final-read",
            OpName::Other(name) => name,
        }
    }

    pub fn into_owned(self) -> OpName<'static> {
        match self {
            OpName::Send => OpName::Send,
            OpName::Poll => OpName::Poll,
            OpName::Assign => OpName::Assign,
            OpName::FinalRead => OpName::FinalRead,
            OpName::Other(name) => OpName::Other(Cow::Owned(name.into_owned())),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for OpName<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(|text| OpName::from_text(text.0))
    }
}

/// One record of a poll or final read: `[partition, offset, "value"]`.
pub type Record<'a> = (i32, i64, ValueText<'a>);

/// A produced value as read from the history: `<process>-<seq>` already split into numbers
/// (the common case, and all the checker needs), or any other string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueText<'a> {
    Key {
        process: u64,
        sequence: u64,
    },
    Other(Cow<'a, str>),
    /// Already turned into an id by the reader thread; `name` on the value's first appearance.
    Interned {
        id: ValueId,
        name: Option<ValueName>,
    },
}

impl<'a> ValueText<'a> {
    pub fn into_owned(self) -> ValueText<'static> {
        match self {
            ValueText::Key { process, sequence } => ValueText::Key { process, sequence },
            ValueText::Other(text) => ValueText::Other(Cow::Owned(text.into_owned())),
            ValueText::Interned { id, name } => ValueText::Interned { id, name },
        }
    }

    pub fn from_text(text: Cow<'a, str>) -> Self {
        match parse_value_key(&text) {
            Some((process, sequence)) => ValueText::Key { process, sequence },
            None => ValueText::Other(text),
        }
    }
}

impl std::fmt::Display for ValueText<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueText::Key { process, sequence } => write!(formatter, "{process}-{sequence}"),
            ValueText::Other(text) => formatter.write_str(text),
            ValueText::Interned {
                id,
                name: Some(name),
            } => write!(formatter, "{name} (#{id})"),
            ValueText::Interned { id, name: None } => write!(formatter, "#{id}"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(|text| ValueText::from_text(text.0))
    }
}

/// A JSON string borrowed from the line when it has no escapes (serde's own `Cow<str>` always
/// copies when nested in an `Option` or a tuple).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The fields of an operation's `value` the checker reads.
#[derive(Debug, Default, Deserialize)]
pub struct Fields<'a> {
    /// `send`: the produced value, `<process>-<seq>`.
    #[serde(borrow, default)]
    pub value: Option<ValueText<'a>>,
    /// `send` ok (and maybe info), `final-read`.
    #[serde(default)]
    pub partition: Option<i32>,
    /// `send` ok.
    #[serde(default)]
    pub offset: Option<i64>,
    /// `poll` ok and `final-read` ok.
    #[serde(borrow, default)]
    pub records: Option<Vec<Record<'a>>>,
    /// `final-read` ok.
    #[serde(default)]
    pub complete: Option<bool>,
    /// `assign`.
    #[serde(default)]
    pub positions: Option<Vec<(i32, i64)>>,
    /// Nemesis operations.
    #[serde(borrow, default)]
    pub node: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub why: Option<Text<'a>>,
}

/// One history line.
#[derive(Debug, Deserialize)]
pub struct Line<'a> {
    pub index: u64,
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub op_type: OpType,
    #[serde(borrow)]
    pub f: OpName<'a>,
    #[serde(borrow)]
    pub value: Fields<'a>,
}

impl Fields<'_> {
    /// The same fields, owning their strings (records keep their allocation).
    pub fn into_owned(self) -> Fields<'static> {
        Fields {
            value: self.value.map(ValueText::into_owned),
            partition: self.partition,
            offset: self.offset,
            records: self.records.map(|records| {
                records
                    .into_iter()
                    .map(|(partition, offset, value)| (partition, offset, value.into_owned()))
                    .collect()
            }),
            complete: self.complete,
            positions: self.positions,
            node: self.node.map(Text::into_owned),
            why: self.why.map(Text::into_owned),
        }
    }
}

impl Line<'_> {
    /// The same line, owning its strings: to hand it to another thread.
    pub fn into_owned(self) -> Line<'static> {
        Line {
            index: self.index,
            time_ns: self.time_ns,
            process: self.process,
            op_type: self.op_type,
            f: self.f.into_owned(),
            value: self.value.into_owned(),
        }
    }
}

impl Default for Line<'_> {
    fn default() -> Self {
        Self {
            index: 0,
            time_ns: 0,
            process: Process::Nemesis,
            op_type: OpType::Invoke,
            f: OpName::Other(Cow::Borrowed("")),
            value: Fields::default(),
        }
    }
}

/// The same line with its value skipped: for operations whose value the checker does not read.
#[derive(Debug, Deserialize)]
struct LineIgnoringValue<'a> {
    index: u64,
    time_ns: u64,
    process: Process,
    #[serde(rename = "type")]
    op_type: OpType,
    #[serde(borrow)]
    f: OpName<'a>,
    #[allow(dead_code)]
    value: serde::de::IgnoredAny,
}

/// Parses one line (without its newline) into `line`. `Ok(Some(error))`: the line is an
/// operation but its value could not be read (it is left empty). `Err`: the reason the line is
/// not an operation.
#[cfg(test)]
pub fn parse_line<'a>(text: &'a [u8], line: &mut Line<'a>) -> Result<Option<String>, String> {
    let mut scanned = Line::default();
    if super::scan::scan_line(text, &mut scanned).is_some() {
        *line = scanned;
        return Ok(None);
    }
    parse_with_serde(text, line)
}

/// Parses one line with serde (any valid spelling), for lines the scanner turned down.
pub fn parse_with_serde<'a>(text: &'a [u8], line: &mut Line<'a>) -> Result<Option<String>, String> {
    match serde_json::from_slice::<Line<'_>>(text) {
        Ok(parsed) => {
            *line = parsed;
            Ok(None)
        }
        Err(strict_error) => match serde_json::from_slice::<LineIgnoringValue<'_>>(text) {
            Ok(loose) => {
                *line = Line {
                    index: loose.index,
                    time_ns: loose.time_ns,
                    process: loose.process,
                    op_type: loose.op_type,
                    f: loose.f,
                    value: Fields::default(),
                };
                Ok(Some(strict_error.to_string()))
            }
            Err(_) => Err(strict_error.to_string()),
        },
    }
}

/// A value `<process>-<seq>` as two numbers, or `None` if it is not of that form (decimal
/// digits only, no leading zeros, each fitting a u64), so that a key prints back as the same
/// string. One pass over the bytes: this runs for every value of every record.
pub fn parse_value_key(value: &str) -> Option<(u64, u64)> {
    let bytes = value.as_bytes();
    let dash = bytes.iter().position(|byte| *byte == b'-')?;
    let process = parse_digits(bytes.get(..dash)?)?;
    let sequence = parse_digits(bytes.get(dash + 1..)?)?;
    Some((process, sequence))
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    let (first, rest) = digits.split_first()?;
    if *first == b'0' && !rest.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |number, byte| {
        let digit = byte.checked_sub(b'0').filter(|digit| *digit <= 9)?;
        number.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
        let spaced = br#"{"index":1, "time_ns":3,"process":3,"type":"ok","f":"send","value":{"value":"a-b"}}"#;
        let mut line = Line::default();
        assert_eq!(parse_line(spaced, &mut line), Ok(None));
        assert!(matches!(
            line.value.value,
            Some(ValueText::Other(Cow::Borrowed("a-b")))
        ));
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
    fn value_keys() {
        assert_eq!(parse_value_key("3-17"), Some((3, 17)));
        assert_eq!(parse_value_key("3-017"), None);
        assert_eq!(parse_value_key("3-"), None);
        assert_eq!(parse_value_key("a-1"), None);
        assert_eq!(parse_value_key("3-1-2"), None);
        assert_eq!(parse_value_key("99999999999999999999-1"), None);
        assert_eq!(
            parse_value_key("18446744073709551615-0"),
            Some((u64::MAX, 0))
        );
        assert_eq!(parse_value_key("0-0"), Some((0, 0)));
        assert_eq!(parse_value_key("-1"), None);
        assert_eq!(parse_value_key("1-+1"), None);
    }
}
