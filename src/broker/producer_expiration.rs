//! Forgets idle producers: every `producer.id.expiration.check.interval.ms` (and once at start,
//! for state loaded from snapshots) each hosted partition drops the producers whose latest batch
//! is older than `producer.id.expiration.ms` (Kafka's `PeriodicProducerExpirationCheck`). This
//! is what bounds the producer state's memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::broker::context::Broker;

/// Runs until `stopped` turns true.
pub async fn run(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let interval = Duration::from_millis(broker.config.producer_id_expiration_check_interval_ms);
    let expiration_ms = i64::try_from(broker.config.producer_id_expiration_ms).unwrap_or(i64::MAX);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let now_ms = now_ms();
        for partition in broker.replicas.all() {
            let removed = partition.remove_expired_producers(now_ms, expiration_ms);
            if removed > 0 {
                tracing::info!(
                    "[ProducerStateManager partition={}-{}] expired {removed} producer ids idle \
                     for {expiration_ms} ms",
                    partition.topic,
                    partition.index
                );
            }
        }
    }
}

/// Milliseconds since the epoch, as batch timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
