//! Compact bookkeeping for values and offsets, so that memory grows with the number of distinct
//! values and not with the size of the history.
//!
//! - [`ValueIds`] turns a value string into a dense `u32` id: `<process>-<seq>` values are
//!   parsed into two numbers and looked up in a per-process vector indexed by sequence number;
//!   values that do not parse (or are far from the others of their process) go to a small side
//!   map. The string is never stored for parsed values: [`ValueIds::text`] rebuilds it.
//! - [`ValueInfo`] is what the checker knows about one value (its send, its reads).
//! - [`OffsetTable`] maps (partition, offset) to the value last read there, remembering whether
//!   the final read saw it, in a dense vector per partition (4 bytes per offset).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::parse::ValueText;

/// A fast, non-cryptographic hasher for the checker's integer-keyed maps (the history is our
/// own file, so there is no adversary to flood them): FxHash's multiply-rotate.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }
    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }
    fn write_i32(&mut self, value: i32) {
        self.add(u64::from(value as u32));
    }
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }
    fn write_i64(&mut self, value: i64) {
        self.add(value as u64);
    }
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<FastHasher>>;

/// A dense value id (index into the checker's per-value vector).
pub type ValueId = u32;

/// The largest number of distinct values the checker accepts (ids use 31 bits).
pub const MAX_VALUES: usize = OffsetTable::EMPTY as usize;

/// A dense vector may grow to twice its filled slots plus this; keys beyond go to the sparse
/// map, so that scattered offsets or sequence numbers cannot make memory outgrow the entries.
const DENSE_SLACK: u64 = 1 << 16;

/// A vector indexed by `key - base`, with a map for keys that fall far outside it. The base is
/// 0 (offsets) or the first key inserted (sequence numbers of one producer).
#[derive(Debug, Default)]
struct DenseMap {
    base_at_first_key: bool,
    base: u64,
    dense: Vec<u32>,
    /// Slots of `dense` in use.
    filled: u64,
    sparse: FastMap<u64, u32>,
}

impl DenseMap {
    const ABSENT: u32 = u32::MAX;

    fn get(&self, key: u64) -> Option<u32> {
        if let Some(slot) = key
            .checked_sub(self.base)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.dense.get(index))
            && *slot != Self::ABSENT
        {
            return Some(*slot);
        }
        self.sparse.get(&key).copied()
    }

    fn based_at_first_key() -> Self {
        Self {
            base_at_first_key: true,
            ..Self::default()
        }
    }

    fn insert(&mut self, key: u64, id: u32) {
        if self.base_at_first_key && self.dense.is_empty() && self.sparse.is_empty() {
            self.base = key;
        }
        if let Some(index) = key.checked_sub(self.base)
            && (index < self.dense.len() as u64
                || index < self.filled.saturating_mul(2).saturating_add(DENSE_SLACK))
            && let Ok(index) = usize::try_from(index)
        {
            if index >= self.dense.len() {
                self.dense.resize(index + 1, Self::ABSENT);
            }
            if self.dense[index] == Self::ABSENT {
                self.filled += 1;
            }
            self.dense[index] = id;
            return;
        }
        self.sparse.insert(key, id);
    }
}

/// The value string of an id: either parsed numbers or the string itself.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Interns values into dense ids, in order of first appearance. It keeps no strings for
/// `<process>-<seq>` values; [`ValueNames`] (kept by the analysis) turns ids back into text.
#[derive(Debug, Default)]
pub struct ValueIds {
    /// Process number -> index into `processes`.
    by_process: FastMap<u64, usize>,
    processes: Vec<DenseMap>,
    /// The last process looked up and its index: consecutive lookups are often the same.
    last_process: std::cell::Cell<Option<(u64, usize)>>,
    others: FastMap<Box<str>, ValueId>,
    count: usize,
}

impl ValueIds {
    /// The id of `value`, if it was seen.
    fn get(&self, value: &ValueText<'_>) -> Option<ValueId> {
        match value {
            ValueText::Key { process, sequence } => self
                .processes
                .get(self.process_index(*process)?)?
                .get(*sequence),
            ValueText::Other(text) => self.others.get(text.as_ref()).copied(),
            ValueText::Interned { id, .. } => Some(*id),
        }
    }

    /// The id of `value`, and its name if this is its first appearance. `None` when there are
    /// too many values.
    pub fn intern(&mut self, value: &ValueText<'_>) -> Option<(ValueId, Option<ValueName>)> {
        if let Some(id) = self.get(value) {
            return Some((id, None));
        }
        if self.count >= MAX_VALUES {
            return None;
        }
        let id = ValueId::try_from(self.count).ok()?;
        let name = match value {
            ValueText::Key { process, sequence } => {
                let index = match self.process_index(*process) {
                    Some(index) => index,
                    None => {
                        self.processes.push(DenseMap::based_at_first_key());
                        self.by_process.insert(*process, self.processes.len() - 1);
                        self.processes.len() - 1
                    }
                };
                if let Some(sequences) = self.processes.get_mut(index) {
                    sequences.insert(*sequence, id);
                }
                ValueName::Key {
                    process: *process,
                    sequence: *sequence,
                }
            }
            ValueText::Other(text) => {
                self.others.insert(text.as_ref().into(), id);
                ValueName::Other(text.as_ref().into())
            }
            ValueText::Interned { .. } => return None,
        };
        self.count += 1;
        Some((id, Some(name)))
    }

    fn process_index(&self, process: u64) -> Option<usize> {
        if let Some((last, index)) = self.last_process.get()
            && last == process
        {
            return Some(index);
        }
        let index = *self.by_process.get(&process)?;
        self.last_process.set(Some((process, index)));
        Some(index)
    }
}

/// Value ids back to their text (for examples and messages).
#[derive(Debug, Default)]
pub struct ValueNames {
    names: Vec<ValueName>,
}

impl ValueNames {
    /// The name of the next id.
    pub fn push(&mut self, name: ValueName) {
        self.names.push(name);
    }

    /// The value string of an id.
    pub fn text(&self, id: ValueId) -> String {
        match self.names.get(id as usize) {
            Some(name) => name.to_string(),
            None => format!("<value #{id}>"),
        }
    }
}

/// What became of a value's send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendOutcome {
    /// No send of this value was invoked (it was only read).
    #[default]
    NotInvoked,
    /// Invoked, no completion yet (at the end: indeterminate).
    Pending,
    Ok,
    Fail,
    Info,
}

/// Partition numbers are `i32` in Kafka; this one means "none".
pub const NO_PARTITION: i32 = i32::MIN;

/// What the checker knows about one value (assembled from [`ValueTable`]'s two halves).
#[derive(Debug, Clone, Copy)]
pub struct ValueInfo {
    pub outcome: SendOutcome,
    /// Whether any poll or final read returned it.
    pub read: bool,
    /// The partition of the send (from its `ok`, or an `info` that knew it).
    pub send_partition: i32,
    /// The partition of the first read that returned it.
    pub first_read_partition: i32,
    /// The partition of the final read that returned it.
    pub final_partition: i32,
    pub send_offset: i64,
    pub first_read_offset: i64,
    /// The producer process that invoked the send.
    pub producer: u64,
    /// Line number (1-based) of the send's invoke: orders invocations for `reordered`.
    pub invoke_line: u64,
    /// `time_ns` of the send's invoke.
    pub invoke_ns: u64,
    /// `time_ns` of the send's completion.
    pub completed_ns: u64,
    /// History index of the completion.
    pub completed_index: u64,
}

/// The half of a value's state that reads touch: small, so that reads (which jump around the
/// values) miss the cache less.
#[derive(Debug, Clone, Copy)]
pub struct ReadInfo {
    pub first_read_offset: i64,
    pub first_read_partition: i32,
    pub final_partition: i32,
    pub send_partition: i32,
    pub read: bool,
    pub duplicated: bool,
}

impl Default for ReadInfo {
    fn default() -> Self {
        Self {
            first_read_offset: -1,
            first_read_partition: NO_PARTITION,
            final_partition: NO_PARTITION,
            send_partition: NO_PARTITION,
            read: false,
            duplicated: false,
        }
    }
}

/// The half of a value's state that its send touches.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendInfo {
    pub send_offset: i64,
    pub producer: u64,
    pub invoke_line: u64,
    pub invoke_ns: u64,
    pub completed_ns: u64,
    pub completed_index: u64,
    pub outcome: SendOutcome,
}

/// Per-value state, indexed by [`ValueId`], split in a read half and a send half.
#[derive(Debug, Default)]
pub struct ValueTable {
    reads: Vec<ReadInfo>,
    sends: Vec<SendInfo>,
}

impl ValueTable {
    /// Adds the state of a new value (ids are handed out in order).
    pub fn push(&mut self) {
        self.reads.push(ReadInfo::default());
        self.sends.push(SendInfo::default());
    }

    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn read_mut(&mut self, id: ValueId) -> Option<&mut ReadInfo> {
        self.reads.get_mut(id as usize)
    }

    pub fn send(&self, id: ValueId) -> Option<&SendInfo> {
        self.sends.get(id as usize)
    }

    pub fn send_mut(&mut self, id: ValueId) -> Option<&mut SendInfo> {
        self.sends.get_mut(id as usize)
    }

    /// Both halves together.
    pub fn get(&self, id: ValueId) -> Option<ValueInfo> {
        let read = self.reads.get(id as usize)?;
        let send = self.sends.get(id as usize)?;
        Some(ValueInfo {
            outcome: send.outcome,
            read: read.read,
            send_partition: read.send_partition,
            first_read_partition: read.first_read_partition,
            final_partition: read.final_partition,
            send_offset: send.send_offset,
            first_read_offset: read.first_read_offset,
            producer: send.producer,
            invoke_line: send.invoke_line,
            invoke_ns: send.invoke_ns,
            completed_ns: send.completed_ns,
            completed_index: send.completed_index,
        })
    }
}

/// What one read put at one (partition, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub value: ValueId,
    /// Whether the final read returned this value here.
    pub from_final_read: bool,
}

/// (partition, offset) -> the value read there, dense per partition.
#[derive(Debug, Default)]
pub struct OffsetTable {
    /// Partition -> index into `partitions`.
    by_partition: FastMap<i32, usize>,
    partitions: Vec<DenseMap>,
    /// The last partition looked up and its index: records come in runs of one partition.
    last_partition: std::cell::Cell<Option<(i32, usize)>>,
}

impl OffsetTable {
    const FINAL_BIT: u32 = 1 << 31;
    const EMPTY: u32 = Self::FINAL_BIT - 1;

    fn partition_index(&self, partition: i32) -> Option<usize> {
        if let Some((last, index)) = self.last_partition.get()
            && last == partition
        {
            return Some(index);
        }
        let index = *self.by_partition.get(&partition)?;
        self.last_partition.set(Some((partition, index)));
        Some(index)
    }

    pub fn get(&self, partition: i32, offset: i64) -> Option<Slot> {
        let offset = u64::try_from(offset).ok()?;
        let raw = self
            .partitions
            .get(self.partition_index(partition)?)?
            .get(offset)?;
        (raw != Self::EMPTY).then_some(Slot {
            value: raw & !Self::FINAL_BIT,
            from_final_read: raw & Self::FINAL_BIT != 0,
        })
    }

    /// Records that a read returned `slot.value` at (partition, offset) and returns what was
    /// there before. A value from the final read replaces any other; a later non-final read
    /// never replaces the final read's. Negative offsets are not stored.
    pub fn put(&mut self, partition: i32, offset: i64, slot: Slot) -> Option<Slot> {
        let previous = self.get(partition, offset);
        let Ok(offset) = u64::try_from(offset) else {
            return previous;
        };
        let keep_previous =
            previous.is_some_and(|old| old.from_final_read && !slot.from_final_read);
        if keep_previous || previous == Some(slot) {
            return previous;
        }
        let raw = slot.value
            | if slot.from_final_read {
                Self::FINAL_BIT
            } else {
                0
            };
        let index = match self.partition_index(partition) {
            Some(index) => index,
            None => {
                self.partitions.push(DenseMap::default());
                let index = self.partitions.len() - 1;
                self.by_partition.insert(partition, index);
                index
            }
        };
        if let Some(offsets) = self.partitions.get_mut(index) {
            offsets.insert(offset, raw);
        }
        previous
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn text(value: &str) -> ValueText<'_> {
        ValueText::from_text(value.into())
    }

    #[test]
    fn interning_parsed_and_other_values() {
        let mut ids = ValueIds::default();
        let mut names = ValueNames::default();
        let mut intern = |value: &str| {
            let (id, name) = ids.intern(&text(value)).unwrap();
            let new = name.is_some();
            if let Some(name) = name {
                names.push(name);
            }
            (id, new)
        };
        assert_eq!(intern("3-17"), (0, true));
        assert_eq!(intern("weird"), (1, true));
        assert_eq!(intern("3-18"), (2, true));
        assert_eq!(intern("3-17"), (0, false));
        assert_eq!(intern("3-99999999999"), (3, true));
        assert_eq!(intern("3-99999999999"), (3, false));
        assert_eq!(names.text(0), "3-17");
        assert_eq!(names.text(1), "weird");
        assert_eq!(names.text(3), "3-99999999999");
    }

    #[test]
    fn scattered_keys_do_not_grow_the_dense_vector() {
        let mut map = DenseMap::default();
        for step in 0..64u64 {
            map.insert(step << 30, 7);
        }
        assert!(map.dense.len() as u64 <= DENSE_SLACK + 1);
        assert_eq!(map.get(63 << 30), Some(7));
        assert_eq!(map.get(5), None);
        for key in 0..100_000u64 {
            map.insert(key, 1);
        }
        assert!(map.dense.len() >= 100_000);
        assert_eq!(map.get(99_999), Some(1));
    }

    #[test]
    fn the_final_read_wins_in_the_offset_table() {
        let mut table = OffsetTable::default();
        let polled = Slot {
            value: 5,
            from_final_read: false,
        };
        let final_read = Slot {
            value: 6,
            from_final_read: true,
        };
        assert_eq!(table.put(1, 40, polled), None);
        assert_eq!(table.put(1, 40, final_read), Some(polled));
        assert_eq!(table.put(1, 40, polled), Some(final_read));
        assert_eq!(table.get(1, 40), Some(final_read));
        assert_eq!(table.get(1, -1), None);
        assert_eq!(table.put(1, i64::MAX, polled), None);
        assert_eq!(table.get(1, i64::MAX), Some(polled));
    }
}
