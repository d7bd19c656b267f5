//! Partition logs on disk: v2 batches, segments with sparse offset indexes, the leader-epoch
//! cache, the idempotent producers' state, and recovery; the log directory's health
//! ([`dir_failure`]) and its clean-shutdown marker ([`clean_shutdown`]).

pub mod batch;
pub mod clean_shutdown;
pub mod dir_failure;
pub mod high_watermark_checkpoint;
pub mod index;
pub mod leader_epoch;
pub mod partition_log;
pub mod producer_state;
pub mod records;
pub mod segment;
pub mod tail_cache;
