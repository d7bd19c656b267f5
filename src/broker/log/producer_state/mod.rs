//! Kafka's idempotent producer, broker side: the producer state each partition log keeps
//! (Kafka's `ProducerStateManager`, which lives with the log too).
//!
//! A producer gets a producer id from InitProducerId ([`producer_ids`](crate::broker::producer_ids): blocks of ids reserved
//! in the coordinator, unique across the cluster) and numbers its records per partition. Every
//! partition replica remembers, per producer id, the epoch and the last five batches' sequence
//! and offset ranges ([`entry`]); the leader checks each produced batch against them
//! ([`append`]: a retry of a remembered batch is answered with its original offsets, a gap is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch INVALID_PRODUCER_EPOCH) while followers record
//! what they copy, so that a new leader recognises retries of what the old one accepted. The
//! state of a partition ([`manager`], owned by its
//! [`PartitionLog`](crate::broker::log::partition_log::PartitionLog)) survives restarts through
//! snapshot files ([`snapshot`]) plus a replay of the log after the latest one, follows
//! truncations, and forgets producers idle for `producer.id.expiration.ms` (the broker's periodic
//! [`producer_expiration`](crate::broker::producer_expiration) task asks it to).
//!
//! # Layout
//! - [`entry`]: one producer's state, sequence arithmetic (wrapping at `i32::MAX`).
//! - [`append`]: the leader's checks of a produced batch (pure).
//! - [`manager`]: one partition's producers, snapshots, load, truncation, expiration.
//! - [`snapshot`]: the `<offset>.snapshot` file format, durable writes, bounded reads.

pub mod append;
pub mod entry;
pub mod manager;
pub mod snapshot;
