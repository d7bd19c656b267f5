//! One history line as a typed, borrowed view ([`Line`]), without building a `serde_json::Value`:
//! its `value` holds only the fields that readers of the documented format use (strings borrowed
//! from the line unless they contain escapes); unknown fields are skipped. The hand-written
//! scanner (`scan`) handles the writer's own layout; [`parse_with_serde`] any other spelling.
//!
//! Operations that no reader interprets (nemesis faults, anything new) may carry values of any
//! shape: if the strict parse fails, [`parse_with_serde`] retries with the value ignored and
//! reports whether the strict parse had failed, so that the caller can decide whether the line
//! is malformed (the checker does for `send`, `poll`, `assign`, `final-read` and the consumer
//! group's `subscribe`, `revoke` and `commit`).

use std::borrow::Cow;

use serde::Deserialize;

use crate::op::{OpType, Process};

/// A dense id that a reader which interns values (the checker) gives each distinct value.
pub type ValueId = u32;

/// A produced value, owned: `<process>-<seq>` as its two numbers, or any other string. What an
/// interning reader keeps of a value it has seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueName {
    Key { process: u64, sequence: u64 },
    Other(Box<str>),
}

impl std::fmt::Display for ValueName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueName::Key { process, sequence } => write!(formatter, "{process}-{sequence}"),
            ValueName::Other(text) => formatter.write_str(text),
        }
    }
}

/// An operation's `f`: the client operations the checker interprets, or any other name (the
/// nemesis's faults).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpName<'a> {
    Send,
    Poll,
    /// Partitions given to a consumer: by the client itself (assign mode) or by its group's
    /// rebalance (`group` set).
    Assign,
    FinalRead,
    /// A consumer joins a group (subscribe mode).
    Subscribe,
    /// A rebalance takes partitions away from a group member.
    Revoke,
    /// A group member commits the offsets it will resume from.
    Commit,
    Other(Cow<'a, str>),
}

impl<'a> OpName<'a> {
    pub fn from_text(text: Cow<'a, str>) -> Self {
        match &*text {
            "send" => OpName::Send,
            "poll" => OpName::Poll,
            "assign" => OpName::Assign,
            "final-read" => OpName::FinalRead,
            "subscribe" => OpName::Subscribe,
            "revoke" => OpName::Revoke,
            "commit" => OpName::Commit,
            _ => OpName::Other(text),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            OpName::Send => "send",
            OpName::Poll => "poll",
            OpName::Assign => "assign",
            OpName::FinalRead => "final-read",
            OpName::Subscribe => "subscribe",
            OpName::Revoke => "revoke",
            OpName::Commit => "commit",
            OpName::Other(name) => name,
        }
    }

    pub fn into_owned(self) -> OpName<'static> {
        match self {
            OpName::Send => OpName::Send,
            OpName::Poll => OpName::Poll,
            OpName::Assign => OpName::Assign,
            OpName::FinalRead => OpName::FinalRead,
            OpName::Subscribe => OpName::Subscribe,
            OpName::Revoke => OpName::Revoke,
            OpName::Commit => OpName::Commit,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueText<'a> {
    Key {
        process: u64,
        sequence: u64,
    },
    Other(Cow<'a, str>),
    /// Already turned into an id by a reader that interns values (the checker's reader
    /// thread); `name` on the value's first appearance.
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// The fields of an operation's `value` that readers use (docs/checker.md describes each).
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
    /// `assign` (assign mode): where the consumer starts reading each partition.
    #[serde(default)]
    pub positions: Option<Vec<(i32, i64)>>,
    /// `subscribe`, `assign` and `revoke` of a group member, `commit`: the consumer group.
    #[serde(borrow, default)]
    pub group: Option<Text<'a>>,
    /// A group member's `assign` and `revoke`: the partitions given or taken away.
    #[serde(default)]
    pub partitions: Option<Vec<i32>>,
    /// A group member's `assign` ok: the group's committed offsets of the assigned partitions,
    /// as the member fetched them (it starts reading there; a partition without one starts at
    /// its log start).
    #[serde(default)]
    pub committed: Option<Vec<(i32, i64)>>,
    /// `commit`: the offsets committed (the next offset to read, per partition).
    #[serde(default)]
    pub offsets: Option<Vec<(i32, i64)>>,
    /// Nemesis operations.
    #[serde(borrow, default)]
    pub node: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub why: Option<Text<'a>>,
    /// Harness events about a client (`client-crash`): the client's process number.
    #[serde(default, rename = "process")]
    pub client_process: Option<u64>,
    /// `client-crash`: why the client's process ended (`signal 11 (SIGSEGV)`).
    #[serde(borrow, default)]
    pub cause: Option<Text<'a>>,
    /// Why a fault or a send went wrong, when the writer says (a string; any other JSON value
    /// is skipped, as unknown fields are).
    #[serde(borrow, default, deserialize_with = "text_or_nothing")]
    pub error: Option<Text<'a>>,
    /// `partition`: node -> the nodes it drops traffic from (Jepsen's grudge).
    #[serde(default)]
    pub grudge: Option<Grudge>,
    /// `partition`: its topology (`isolate`, `one-way`, `halves`, `bridge`, `ring`).
    #[serde(borrow, default)]
    pub topology: Option<Text<'a>>,
    /// `heal`: what it heals (`network`), when not everything.
    #[serde(borrow, default)]
    pub what: Option<Text<'a>>,
}

/// A network partition as the history records it: each node that drops traffic, with the nodes
/// it drops traffic from (a node absent hears everyone).
pub type Grudge = std::collections::BTreeMap<String, Vec<String>>;

/// A string as [`Text`], anything else (a number, an object, ...) as `None`.
fn text_or_nothing<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Text<'a>>, D::Error> {
    struct TextOrNothing;
    impl<'de> serde::de::Visitor<'de> for TextOrNothing {
        type Value = Option<Text<'de>>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("any JSON value")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Text(Cow::Borrowed(text))))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Text(Cow::Owned(text.to_string()))))
        }
        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Text(Cow::Owned(text))))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            Ok(None)
        }
    }
    deserializer.deserialize_any(TextOrNothing)
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
            group: self.group.map(Text::into_owned),
            partitions: self.partitions,
            committed: self.committed,
            offsets: self.offsets,
            node: self.node.map(Text::into_owned),
            why: self.why.map(Text::into_owned),
            client_process: self.client_process,
            cause: self.cause.map(Text::into_owned),
            error: self.error.map(Text::into_owned),
            grudge: self.grudge,
            topology: self.topology.map(Text::into_owned),
            what: self.what.map(Text::into_owned),
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
    use super::*;

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
