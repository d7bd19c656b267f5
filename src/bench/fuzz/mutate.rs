//! Turning seeds into hostile inputs, reproducibly: input number `index` of a run with `seed` is
//! a pure function of the two (its own ChaCha stream), so any input can be regenerated alone.
//!
//! Mutations: flip a bit; set a byte, a 16-bit or a 32-bit word to an extreme; find what looks
//! like a length or count (a small big-endian integer, a small varint) and make it huge,
//! negative or one past the end; insert, delete, duplicate bytes; truncate; splice two seeds.
//! Record batches inside Produce requests are also mutated in place with their CRC recomputed
//! (and the request re-encoded around them), so that the mutation gets past the CRC check into
//! the record walk: record counts of 2^31, compression codecs swapped, varint lengths blown up.
//! A share of inputs are raw random bytes.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::jute_seeds::JuteSeed;
use super::kafka_seeds::KafkaSeed;

/// Where an input goes and how it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    /// A mutated Kafka request.
    KafkaMutated,
    /// A Produce request around a mutated, CRC-valid record batch.
    KafkaBatch,
    /// Random bytes as a Kafka request (half of them behind a valid header).
    KafkaRandom,
    /// A mutated jute stream of a connected client (one or more frames).
    JuteRequest,
    /// A mutated connect handshake.
    JuteConnect,
    /// Random bytes as a jute stream.
    JuteRandom,
}

impl InputKind {
    pub fn is_kafka(self) -> bool {
        matches!(
            self,
            InputKind::KafkaMutated | InputKind::KafkaBatch | InputKind::KafkaRandom
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            InputKind::KafkaMutated => "kafka-mutated",
            InputKind::KafkaBatch => "kafka-batch",
            InputKind::KafkaRandom => "kafka-random",
            InputKind::JuteRequest => "jute-request",
            InputKind::JuteConnect => "jute-connect",
            InputKind::JuteRandom => "jute-random",
        }
    }
}

/// Which seeds a splice takes its tail from.
#[derive(Debug, Clone, Copy)]
enum Splice {
    Kafka,
    Jute,
    Nothing,
}

/// The generator of a run.
pub struct Mutator {
    kafka: Vec<KafkaSeed>,
    jute: Vec<JuteSeed>,
}

/// 32-bit values that break length and count checks.
const EXTREME_I32: &[i32] = &[
    i32::MAX,
    i32::MAX - 1,
    i32::MIN,
    -1,
    -2,
    0,
    0x4000_0000,
    0x0100_0000,
    0x7fff,
    0x8000,
    0xffff,
];
const EXTREME_I16: &[i16] = &[i16::MAX, i16::MIN, -1, -2, 0, 0x7f, 0x80, 0xff];
const EXTREME_BYTE: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
/// Varints of 2^32 - 1, 2^31, i32::MAX (zigzag: -2^31), and a 10-byte varlong.
const EXTREME_VARINTS: &[&[u8]] = &[
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0xfe, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0x07],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80],
];

impl Mutator {
    pub fn new(kafka: Vec<KafkaSeed>, jute: Vec<JuteSeed>) -> Self {
        Mutator { kafka, jute }
    }

    /// The seeds (for reporting).
    pub fn kafka_seeds(&self) -> &[KafkaSeed] {
        &self.kafka
    }

    /// Writes input `index` of the run `seed` into `out`; returns its kind.
    pub fn generate(&self, seed: u64, index: u64, out: &mut Vec<u8>) -> InputKind {
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(index)));
        out.clear();
        match rng.random_range(0..100) {
            0..60 => {
                let seed = &self.kafka[rng.random_range(0..self.kafka.len())];
                out.extend_from_slice(&seed.frame);
                // Mostly keep the API key and version, so the mutation reaches that API's body.
                let protect = if rng.random_bool(0.85) { 4 } else { 0 };
                self.mutate(&mut rng, out, protect, Splice::Kafka);
                InputKind::KafkaMutated
            }
            60..72 => {
                self.mutated_produce(&mut rng, out);
                InputKind::KafkaBatch
            }
            72..80 => {
                if rng.random_bool(0.5) {
                    let seed = &self.kafka[rng.random_range(0..self.kafka.len())];
                    out.extend_from_slice(&seed.frame[..8.min(seed.frame.len())]);
                }
                random_bytes(&mut rng, out, 512);
                InputKind::KafkaRandom
            }
            80..96 => {
                let seed = &self.jute[rng.random_range(0..self.jute.len())];
                out.extend_from_slice(&seed.frame);
                let protect = if rng.random_bool(0.5) { 4 } else { 0 };
                self.mutate(&mut rng, out, protect, Splice::Jute);
                if rng.random_bool(0.7) && out.len() >= 4 {
                    // A consistent frame length, so that the body decoder sees the mutation.
                    let length = (out.len() - 4) as i32;
                    out[..4].copy_from_slice(&length.to_be_bytes());
                }
                if seed.connect {
                    InputKind::JuteConnect
                } else {
                    InputKind::JuteRequest
                }
            }
            _ => {
                if rng.random_bool(0.5) {
                    let length = rng.random_range(0..256u32);
                    out.extend_from_slice(&length.to_be_bytes());
                }
                random_bytes(&mut rng, out, 300);
                InputKind::JuteRandom
            }
        }
    }

    /// One to four stacked mutations, leaving `buf[..protect]` alone (unless it is all there is).
    fn mutate(&self, rng: &mut ChaCha8Rng, buf: &mut Vec<u8>, protect: usize, splice: Splice) {
        let rounds = match rng.random_range(0..10) {
            0..5 => 1,
            5..8 => 2,
            8 => 3,
            _ => 4,
        };
        for _ in 0..rounds {
            let protect = protect.min(buf.len());
            if buf.len() <= protect {
                random_bytes(rng, buf, 8);
                continue;
            }
            let at = rng.random_range(protect..buf.len());
            match rng.random_range(0..12) {
                0 => buf[at] ^= 1 << rng.random_range(0..8),
                1 => buf[at] = EXTREME_BYTE[rng.random_range(0..EXTREME_BYTE.len())],
                2 => {
                    let value = EXTREME_I16[rng.random_range(0..EXTREME_I16.len())];
                    overwrite(buf, at, &value.to_be_bytes());
                }
                3 => {
                    let value = EXTREME_I32[rng.random_range(0..EXTREME_I32.len())];
                    overwrite(buf, at, &value.to_be_bytes());
                }
                4 | 5 => blow_up_a_length(rng, buf, protect),
                6 => blow_up_a_varint(rng, buf, protect),
                7 => {
                    let mut inserted = Vec::new();
                    random_bytes(rng, &mut inserted, 16);
                    buf.splice(at..at, inserted);
                }
                8 => {
                    let end = (at + rng.random_range(1..=16)).min(buf.len());
                    buf.drain(at..end);
                }
                9 => {
                    let end = (at + rng.random_range(1..=32)).min(buf.len());
                    let copy = buf[at..end].to_vec();
                    let to = rng.random_range(protect..=buf.len());
                    buf.splice(to..to, copy);
                }
                10 => buf.truncate(at),
                _ => {
                    let other: &[u8] = match splice {
                        Splice::Kafka => &self.kafka[rng.random_range(0..self.kafka.len())].frame,
                        Splice::Jute => &self.jute[rng.random_range(0..self.jute.len())].frame,
                        Splice::Nothing => &[],
                    };
                    let from = rng.random_range(0..=other.len());
                    buf.truncate(at);
                    buf.extend_from_slice(&other[from..]);
                }
            }
        }
    }

    /// A Produce request (re-encoded) around a mutated record batch whose CRC is valid again.
    fn mutated_produce(&self, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
        let produce: Vec<&KafkaSeed> = self.kafka.iter().filter(|s| s.batch.is_some()).collect();
        let seed = produce[rng.random_range(0..produce.len())];
        let Some(range) = seed.batch.clone() else {
            return;
        };
        let mut batch = seed.frame[range.clone()].to_vec();
        let rounds = rng.random_range(1..=3);
        for _ in 0..rounds {
            match rng.random_range(0..6) {
                0 => {
                    // Claim a huge record count (lastOffsetDelta kept consistent).
                    let count = EXTREME_I32[rng.random_range(0..EXTREME_I32.len())];
                    overwrite(&mut batch, 57, &count.to_be_bytes());
                    overwrite(&mut batch, 23, &count.wrapping_sub(1).to_be_bytes());
                }
                1 => {
                    // Another compression codec (or an unknown one) for the same bytes.
                    if let Some(attributes) = batch.get_mut(22) {
                        *attributes = (*attributes & !0x07) | rng.random_range(0..8u8);
                    }
                }
                _ => {
                    // Anywhere after the CRC: the records themselves, mostly.
                    let protect = 21.min(batch.len());
                    self.mutate(rng, &mut batch, protect, Splice::Nothing);
                }
            }
        }
        if batch.len() >= 21 {
            if rng.random_bool(0.9) && batch.len() >= 12 {
                let length = (batch.len() - 12) as i32;
                overwrite(&mut batch, 8, &length.to_be_bytes());
            }
            let crc = crc32c::crc32c(&batch[21..]);
            overwrite(&mut batch, 17, &crc.to_be_bytes());
        }
        // The request's records field is length-prefixed (fixed or varint by version): splice
        // the batch in by re-encoding the frame's prefix and suffix around it.
        let prefix = &seed.frame[..range.start];
        let suffix = &seed.frame[range.end..];
        out.extend_from_slice(&reprefix(prefix, &range, batch.len()));
        out.extend_from_slice(&batch);
        out.extend_from_slice(suffix);
    }
}

/// The frame prefix before a records field whose length changes from `range.len()` to
/// `new_length`: the field's length prefix (an i32, or a varint of length + 1 in flexible
/// versions) is rewritten.
fn reprefix(prefix: &[u8], range: &std::ops::Range<usize>, new_length: usize) -> Vec<u8> {
    let old_length = range.len();
    // Flexible versions: an unsigned varint of old_length + 1 ends the prefix.
    let varint = encode_unsigned_varint(old_length as u32 + 1);
    if prefix.ends_with(&varint) {
        let mut out = prefix[..prefix.len() - varint.len()].to_vec();
        out.extend_from_slice(&encode_unsigned_varint(new_length as u32 + 1));
        return out;
    }
    let fixed = (old_length as i32).to_be_bytes();
    if prefix.ends_with(&fixed) {
        let mut out = prefix[..prefix.len() - 4].to_vec();
        out.extend_from_slice(&(new_length as i32).to_be_bytes());
        return out;
    }
    prefix.to_vec()
}

fn encode_unsigned_varint(mut value: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// Sets a big-endian word that looks like a length or count (a small value no larger than
/// the bytes after it) to an extreme.
fn blow_up_a_length(rng: &mut ChaCha8Rng, buf: &mut [u8], protect: usize) {
    let wide = rng.random_bool(0.6);
    let width = if wide { 4 } else { 2 };
    let candidates: Vec<usize> = (protect..buf.len().saturating_sub(width - 1))
        .filter(|at| {
            let value = if wide {
                i64::from(i32::from_be_bytes([
                    buf[*at],
                    buf[at + 1],
                    buf[at + 2],
                    buf[at + 3],
                ]))
            } else {
                i64::from(i16::from_be_bytes([buf[*at], buf[at + 1]]))
            };
            (0..=64).contains(&value) && value as usize <= buf.len() - at - width
        })
        .collect();
    let Some(&at) = candidates.get(rng.random_range(0..candidates.len().max(1))) else {
        return;
    };
    let left = (buf.len() - at - width) as i32;
    if wide {
        let choices = [i32::MAX, left + 1, -2, i32::MIN, 0x0100_0000, left * 2 + 1];
        let value = choices[rng.random_range(0..choices.len())];
        overwrite(buf, at, &value.to_be_bytes());
    } else {
        let choices = [i16::MAX, (left.min(0x7ffe) + 1) as i16, -2, i16::MIN];
        let value = choices[rng.random_range(0..choices.len())];
        overwrite(buf, at, &value.to_be_bytes());
    }
}

/// Replaces a byte that looks like a small varint (a compact length) with a huge varint.
fn blow_up_a_varint(rng: &mut ChaCha8Rng, buf: &mut Vec<u8>, protect: usize) {
    let candidates: Vec<usize> = (protect..buf.len())
        .filter(|at| (1..=0x7f).contains(&buf[*at]))
        .collect();
    let Some(&at) = candidates.get(rng.random_range(0..candidates.len().max(1))) else {
        return;
    };
    let varint = EXTREME_VARINTS[rng.random_range(0..EXTREME_VARINTS.len())];
    buf.splice(at..at + 1, varint.iter().copied());
}

fn overwrite(buf: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(buf.len());
    if at < end {
        buf[at..end].copy_from_slice(&bytes[..end - at]);
    }
}

fn random_bytes(rng: &mut ChaCha8Rng, out: &mut Vec<u8>, max: usize) {
    let length = rng.random_range(0..=max);
    let start = out.len();
    out.resize(start + length, 0);
    rng.fill_bytes(&mut out[start..]);
}

/// SplitMix64: spreads (seed, index) over the whole 64-bit seed space.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutator() -> Mutator {
        Mutator::new(
            super::super::kafka_seeds::all().expect("seeds"),
            super::super::jute_seeds::all(),
        )
    }

    #[test]
    fn inputs_are_a_function_of_seed_and_index() {
        let mutator = mutator();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for index in [0, 1, 17, 123_456] {
            let kind_a = mutator.generate(7, index, &mut a);
            let kind_b = mutator.generate(7, index, &mut b);
            assert_eq!((kind_a, &a), (kind_b, &b));
        }
        mutator.generate(7, 1, &mut a);
        mutator.generate(8, 1, &mut b);
        assert_ne!(a, b, "another seed, another input");
    }

    #[test]
    fn batch_mutations_keep_the_crc_valid() {
        let mutator = mutator();
        let mut out = Vec::new();
        let mut valid_crc = 0;
        let mut batches = 0;
        for index in 0..2_000 {
            if mutator.generate(3, index, &mut out) != InputKind::KafkaBatch {
                continue;
            }
            batches += 1;
            // The batch starts with baseOffset 0 and carries magic 2 at +16.
            let Some(start) = out.windows(17).position(|w| w[..8] == [0; 8] && w[16] == 2) else {
                continue;
            };
            let batch = &out[start..];
            let length = i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]);
            let Some(end) = usize::try_from(length).ok().map(|l| l + 12) else {
                continue;
            };
            if end <= batch.len() && end >= 21 {
                let stored = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
                if stored == crc32c::crc32c(&batch[21..end]) {
                    valid_crc += 1;
                }
            }
        }
        assert!(batches > 100, "{batches}");
        assert!(valid_crc * 2 > batches, "{valid_crc} of {batches}");
    }
}
