//! Producers (Jepsen's client for `send`): each drives one session (a worker process) that
//! sends unique values (`<process>-<seq>`) at a fixed rate or as fast as a bounded number of
//! in-flight sends allows, and records each send as an invoke and the one completion the worker
//! answered:
//! - `ok` with partition and offset when the broker acknowledged it;
//! - `fail` (with the partition, if known) only when it certainly was not appended (the worker
//!   decides, with its library's knowledge: the rdkafka worker's rule is in src/client/producer.rs);
//! - `info` otherwise (timeouts, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a broken connection, and
//!   every send in flight when the worker crashed).
//!
//! When the worker dies, a fresh one takes over as a new process after a short backoff, and
//! sending goes on with the new process's values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use history::{OpType, Process};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::protocol::{Operation, Outcome, Reply, Role};
use super::session::{Launcher, Session, replace_session};
use crate::recorder::Recorder;

/// Beyond the delivery and request timeouts, how long a send may go unanswered before its
/// worker counts as silent (a library always reports a delivery by then).
const SEND_PATIENCE_MARGIN: Duration = Duration::from_secs(10);
/// After the in-flight sends' patience at the end, how long the worker may take to close.
const CLOSE_MARGIN: Duration = Duration::from_secs(2);

/// How a producer is set up.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub acks: String,
    pub retries: Option<u32>,
    pub idempotence: bool,
    pub linger_ms: u64,
    /// `batch.size` in bytes; `None`: the library's default.
    pub batch_size: Option<u32>,
    /// The workload's `producer_config`, over the worker's own settings.
    pub extra_config: BTreeMap<String, String>,
    pub message_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Sends per second; 0 = as fast as `max_in_flight` allows.
    pub rate: u32,
    pub max_in_flight: u32,
    pub keys: u32,
}

impl ProducerSettings {
    /// The producer's config, in Kafka's names (docs/client-protocol.md).
    pub fn config(&self, process: u64) -> BTreeMap<String, String> {
        let mut config: BTreeMap<String, String> = [
            ("bootstrap.servers", self.bootstrap_servers.clone()),
            ("client.id", format!("kchaos-producer-{process}")),
            ("acks", self.acks.clone()),
            ("enable.idempotence", self.idempotence.to_string()),
            ("linger.ms", self.linger_ms.to_string()),
            ("delivery.timeout.ms", self.message_timeout_ms.to_string()),
            ("request.timeout.ms", self.request_timeout_ms.to_string()),
            ("retry.backoff.ms", "100".to_string()),
            ("retry.backoff.max.ms", "500".to_string()),
            ("reconnect.backoff.ms", "50".to_string()),
            ("reconnect.backoff.max.ms", "500".to_string()),
            ("socket.connection.setup.timeout.ms", "3000".to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        if let Some(retries) = self.retries {
            config.insert("retries".into(), retries.to_string());
        }
        if let Some(batch_size) = self.batch_size {
            config.insert("batch.size".into(), batch_size.to_string());
        }
        for (key, value) in &self.extra_config {
            config.entry(key.clone()).or_insert_with(|| value.clone());
        }
        config
    }

    /// How long one send may go unanswered.
    fn send_patience(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms + self.request_timeout_ms)
            + SEND_PATIENCE_MARGIN
    }
}

/// How one session's sending ended.
enum Ended {
    Stopped,
    Died,
}

/// Runs a producer from `first` (already started) until `stop` turns true, replacing it through
/// `launcher` whenever it dies; then waits for its in-flight sends (up to the delivery timeout
/// and a margin) and closes it.
pub async fn run_producer(
    first: Arc<dyn Session>,
    settings: ProducerSettings,
    launcher: Arc<dyn Launcher>,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.max_in_flight as usize));
    let mut pacer = Pacer::new(settings.rate);
    let mut session = first;
    loop {
        let ended = produce(
            &session, &settings, &recorder, &permits, &mut pacer, &mut stop,
        )
        .await;
        match ended {
            Ended::Stopped => break,
            Ended::Died => {
                let config = |process| settings.config(process);
                match replace_session(&*launcher, Role::Producer, config, &mut stop).await {
                    Some(fresh) => session = fresh,
                    None => break,
                }
            }
        }
    }
    let patience = Duration::from_millis(settings.message_timeout_ms) + CLOSE_MARGIN;
    session.close(patience).await;
    // Every reply has come (or the worker died, which answers them all): the permits are back.
    let all = settings.max_in_flight;
    if tokio::time::timeout(CLOSE_MARGIN, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "producer {}: sends still unanswered after close",
            session.process()
        );
    }
}

/// Sends through `session` until `stop` or its death.
async fn produce(
    session: &Arc<dyn Session>,
    settings: &ProducerSettings,
    recorder: &Recorder,
    permits: &Arc<Semaphore>,
    pacer: &mut Option<Pacer>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let process = session.process();
    let mut death = session.death();
    let patience = settings.send_patience();
    let mut sequence: u64 = 0;
    loop {
        if *stop.borrow() {
            return Ended::Stopped;
        }
        if death.borrow().is_some() {
            return Ended::Died;
        }
        if let Some(pacer) = pacer.as_mut() {
            tokio::select! {
                _ = pacer.next() => {}
                _ = stop.wait_for(|stopped| *stopped) => return Ended::Stopped,
                _ = death.wait_for(Option::is_some) => return Ended::Died,
            }
        }
        let permit = tokio::select! {
            permit = Arc::clone(permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ended::Stopped,
            },
            _ = stop.wait_for(|stopped| *stopped) => return Ended::Stopped,
            _ = death.wait_for(Option::is_some) => return Ended::Died,
        };
        sequence += 1;
        let key = format!("k{}", sequence % u64::from(settings.keys));
        let value = format!("{process}-{sequence}");
        let invoke = json!({"key": key, "value": value});
        recorder.record(
            Process::Client(process),
            OpType::Invoke,
            "send",
            invoke.clone(),
        );
        let send = Operation::Send {
            topic: settings.topic.clone(),
            key: Some(key),
            value,
            partition: None,
        };
        let reply = session.submit(send, patience).await;
        tokio::spawn(complete(reply, recorder.clone(), process, invoke, permit));
    }
}

/// Records the completion of one send when its reply comes.
async fn complete(
    reply: tokio::sync::oneshot::Receiver<Reply>,
    recorder: Recorder,
    process: u64,
    invoke: Value,
    permit: OwnedSemaphorePermit,
) {
    let reply = reply
        .await
        .unwrap_or_else(|_| Reply::error(0, Outcome::Info, "no reply"));
    let (op_type, value) = completion(invoke, &reply);
    recorder.record(Process::Client(process), op_type, "send", value);
    drop(permit);
}

/// The history's completion of a send from its reply: the invoke's value with partition and
/// offset (ok), or with the error and the partition if known (fail, info).
pub fn completion(invoke: Value, reply: &Reply) -> (OpType, Value) {
    let mut value = invoke;
    let op_type = reply.outcome.op_type();
    if op_type == OpType::Ok {
        value["partition"] = json!(reply.partition.unwrap_or(-1));
        value["offset"] = json!(reply.offset.unwrap_or(-1));
    } else {
        value["error"] = json!(reply.error.as_deref().unwrap_or("no reason given"));
        if let Some(partition) = reply.partition {
            value["partition"] = json!(partition);
        }
    }
    (op_type, value)
}

/// Spaces sends to a rate: one timer tick per send up to 200 per second, and above that a few
/// sends per tick (tokio's timer has millisecond resolution). A stall is not made up for later.
pub struct Pacer {
    ticker: tokio::time::Interval,
    sends_per_tick: u32,
    left_in_tick: u32,
}

impl Pacer {
    /// `None` for rate 0 (as fast as the in-flight bound allows).
    pub fn new(rate: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let sends_per_tick = rate.div_ceil(200);
        let period = Duration::from_secs_f64(f64::from(sends_per_tick) / f64::from(rate));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(Pacer {
            ticker,
            sends_per_tick,
            left_in_tick: 0,
        })
    }

    /// Waits until the next send is due.
    pub async fn next(&mut self) {
        if self.left_in_tick == 0 {
            self.ticker.tick().await;
            self.left_in_tick = self.sends_per_tick;
        }
        self.left_in_tick -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_keeps_high_rates() {
        let mut pacer = Pacer::new(1000).expect("a rate");
        let started = tokio::time::Instant::now();
        for _ in 0..1000 {
            pacer.next().await;
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1010),
            "1000 sends at 1000/s took {elapsed:?}"
        );
        assert!(Pacer::new(0).is_none());
    }

    #[test]
    fn the_harness_sets_only_the_keys_workloads_may_not_and_passes_the_rest() {
        let settings = ProducerSettings {
            bootstrap_servers: "b:9092".into(),
            topic: "t".into(),
            acks: "all".into(),
            retries: Some(3),
            idempotence: false,
            linger_ms: 5,
            batch_size: Some(1),
            extra_config: BTreeMap::from([(
                "topic.metadata.refresh.interval.ms".to_string(),
                "10000".to_string(),
            )]),
            message_timeout_ms: 1000,
            request_timeout_ms: 1000,
            rate: 1,
            max_in_flight: 1,
            keys: 1,
        };
        let config = settings.config(1);
        for key in config.keys() {
            assert!(
                crate::workload::HARNESS_PRODUCER_KEYS.contains(&key.as_str())
                    || settings.extra_config.contains_key(key),
                "{key} is set by the harness but a workload's producer_config may override it"
            );
        }
        assert_eq!(config["topic.metadata.refresh.interval.ms"], "10000");
        assert_eq!(config["batch.size"], "1");
    }

    #[test]
    fn completions_carry_what_the_reply_says() {
        let invoke = json!({"key": "k1", "value": "3-1"});
        let ok = Reply {
            partition: Some(2),
            offset: Some(40),
            ..Reply::ok(7)
        };
        let (op_type, value) = completion(invoke.clone(), &ok);
        assert_eq!(op_type, OpType::Ok);
        assert_eq!(
            value,
            json!({"key": "k1", "value": "3-1", "partition": 2, "offset": 40})
        );
        let crashed = Reply::error(8, Outcome::Info, "client crashed: signal 11 (SIGSEGV)");
        let (op_type, value) = completion(invoke, &crashed);
        assert_eq!(op_type, OpType::Info);
        assert_eq!(
            value,
            json!({"key": "k1", "value": "3-1", "error": "client crashed: signal 11 (SIGSEGV)"})
        );
    }
}
