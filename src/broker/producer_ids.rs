//! Producer id allocation, unique across the cluster, as Kafka's `ZkProducerIdManager` does it:
//! each broker reserves a block of [`PRODUCER_ID_BLOCK_SIZE`] ids by a compare-and-set of the
//! znode `/latest_producer_id_block` (`{"version":1,"broker":2,"block_start":"1000",
//! "block_end":"1999"}`) and hands them out one by one; the next block starts after the latest
//! one written by any broker. A restarted broker reserves a fresh block, so no id is ever given
//! twice (ids of an abandoned block are simply skipped).

use serde::{Deserialize, Serialize};

use crate::broker::zk::{KafkaZkClient, PRODUCER_ID_BLOCK_PATH, ZkClientError};

/// Ids reserved per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Compare-and-set attempts before giving up (other brokers kept winning).
const RESERVE_ATTEMPTS_MAX: usize = 20;

/// Why no producer id could be given.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error(transparent)]
    Coordinator(#[from] ZkClientError),
    #[error("{path} holds an invalid producer id block: {reason}")]
    BadBlock { path: String, reason: String },
    #[error("no producer id block could be reserved in {attempts} attempts (contention)")]
    Contention { attempts: usize },
    #[error("all producer ids are used (the latest block ends at {block_end})")]
    Exhausted { block_end: i64 },
}

/// `/latest_producer_id_block`, Kafka's JSON (ids as strings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ProducerIdBlockJson {
    version: i64,
    broker: i32,
    block_start: serde_json::Value,
    block_end: serde_json::Value,
}

/// A reserved block: `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first: i64,
    pub last: i64,
}

impl ProducerIdBlock {
    /// The block after the one stored in `data` (the first block when `data` is empty).
    pub fn next_after(data: &[u8]) -> Result<Self, ProducerIdError> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(ProducerIdBlock {
                first: 0,
                last: PRODUCER_ID_BLOCK_SIZE - 1,
            });
        }
        let bad = |reason: String| ProducerIdError::BadBlock {
            path: PRODUCER_ID_BLOCK_PATH.to_string(),
            reason,
        };
        let json: ProducerIdBlockJson =
            serde_json::from_slice(data).map_err(|error| bad(error.to_string()))?;
        let block_end =
            id_of(&json.block_end).ok_or_else(|| bad("block_end is not an id".to_string()))?;
        if block_end > i64::MAX - PRODUCER_ID_BLOCK_SIZE {
            return Err(ProducerIdError::Exhausted { block_end });
        }
        Ok(ProducerIdBlock {
            first: block_end + 1,
            last: block_end + PRODUCER_ID_BLOCK_SIZE,
        })
    }

    fn to_json(self, broker_id: i32) -> Vec<u8> {
        let json = ProducerIdBlockJson {
            version: 1,
            broker: broker_id,
            block_start: serde_json::Value::String(self.first.to_string()),
            block_end: serde_json::Value::String(self.last.to_string()),
        };
        serde_json::to_vec(&json).unwrap_or_default()
    }
}

/// An id written as a string (Kafka) or a number; not negative.
fn id_of(value: &serde_json::Value) -> Option<i64> {
    let id = match value {
        serde_json::Value::String(text) => text.parse().ok()?,
        other => other.as_i64()?,
    };
    (id >= 0).then_some(id)
}

/// The ids this broker hands out.
pub struct ProducerIdManager {
    broker_id: i32,
    /// The next id to give and the last of the reserved block.
    current: tokio::sync::Mutex<Option<(i64, i64)>>,
}

impl ProducerIdManager {
    pub fn new(broker_id: i32) -> Self {
        ProducerIdManager {
            broker_id,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// A producer id no broker has given before, reserving a new block when this one is used up.
    pub async fn generate(&self, coordinator: &KafkaZkClient) -> Result<i64, ProducerIdError> {
        let mut current = self.current.lock().await;
        let (next, last) = match *current {
            Some((next, last)) if next <= last => (next, last),
            _ => {
                let block = self.reserve(coordinator).await?;
                tracing::info!(
                    "[ProducerIdManager {}] reserved producer ids {}..={}",
                    self.broker_id,
                    block.first,
                    block.last
                );
                (block.first, block.last)
            }
        };
        *current = Some((next + 1, last));
        Ok(next)
    }

    /// Reserves the block after the latest one with a compare-and-set.
    async fn reserve(
        &self,
        coordinator: &KafkaZkClient,
    ) -> Result<ProducerIdBlock, ProducerIdError> {
        for _ in 0..RESERVE_ATTEMPTS_MAX {
            let (data, version) = coordinator.producer_id_block().await?;
            let block = ProducerIdBlock::next_after(&data)?;
            match coordinator
                .set_producer_id_block(&block.to_json(self.broker_id), version)
                .await
            {
                Ok(_) => return Ok(block),
                Err(ZkClientError::BadVersion { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ProducerIdError::Contention {
            attempts: RESERVE_ATTEMPTS_MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_the_latest_one_written() {
        assert_eq!(
            ProducerIdBlock::next_after(b"").expect("test value"),
            ProducerIdBlock {
                first: 0,
                last: 999
            }
        );
        let first = ProducerIdBlock {
            first: 0,
            last: 999,
        };
        let written = first.to_json(3);
        let text = String::from_utf8(written.clone()).expect("test value");
        assert!(text.contains("\"block_start\":\"0\""), "{text}");
        assert!(text.contains("\"broker\":3"), "{text}");
        assert_eq!(
            ProducerIdBlock::next_after(&written).expect("test value"),
            ProducerIdBlock {
                first: 1000,
                last: 1999
            }
        );
        assert_eq!(
            ProducerIdBlock::next_after(
                br#"{"version":1,"broker":1,"block_start":5000,"block_end":5999}"#
            )
            .expect("test value"),
            ProducerIdBlock {
                first: 6000,
                last: 6999
            }
        );
        assert!(ProducerIdBlock::next_after(b"{}").is_err());
        assert!(
            ProducerIdBlock::next_after(
                br#"{"version":1,"broker":1,"block_start":"0","block_end":"-5"}"#
            )
            .is_err()
        );
        let end = (i64::MAX - 10).to_string();
        let nearly = format!(r#"{{"version":1,"broker":1,"block_start":"0","block_end":"{end}"}}"#);
        assert!(matches!(
            ProducerIdBlock::next_after(nearly.as_bytes()),
            Err(ProducerIdError::Exhausted { .. })
        ));
    }
}
