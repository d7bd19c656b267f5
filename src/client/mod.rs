//! `kchaos client`: the rdkafka client worker. The harness starts one per producer and consumer
//! and speaks the worker protocol (docs/client-protocol.md) with it on stdin and stdout: it says
//! hello (librdkafka and its version), opens a producer or a consumer, then answers requests —
//! sends pipelined through librdkafka, each answered from its delivery report; consumer requests
//! one at a time. Logs go to stderr (the harness keeps them as `clients/client-N.log`). A crash
//! of librdkafka ends only this process: the harness completes its in-flight operations as
//! `info` and starts another worker.
//!
//! # Layout
//! - this file: the request loop and the dispatch ([`RdkafkaClient`]).
//! - [`producer`]: sends and the rule that sorts a delivery report into ok, fail or info.
//! - [`consumer`]: assign, subscribe, poll, commit, watermarks; [`final_read`]: a partition in
//!   full.
//! - [`errors`]: librdkafka's own error names.
//! - [`context`]: the quiet rdkafka context (logs, rebalance news).
//! - [`output`]: the stdout writer.
//! - [`in_process`]: the same client inside the calling process (benchmarks only).
//!
//! `KCHAOS_TEST_CLIENT_SIGSEGV=PROCESS:REQUESTS[,...]` (tests only) makes the worker of that
//! process kill itself with SIGSEGV right after handling that many requests: a client-library
//! crash on demand.

pub mod consumer;
pub mod context;
pub mod errors;
pub mod final_read;
pub mod in_process;
pub mod output;
pub mod producer;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use harness::clients::protocol::{Hello, Operation, Outcome, Reply, Request, Role};
use rdkafka::ClientConfig;

use self::consumer::ConsumerClient;
use self::output::Output;
use self::producer::ProducerClient;

/// Where a reply goes once it is known (from any thread).
pub type Responder = Box<dyn FnOnce(Reply) + Send + Sync>;

/// The environment variable of the crash-on-demand test hook.
pub const SIGSEGV_ENV: &str = "KCHAOS_TEST_CLIENT_SIGSEGV";

/// Arguments of `kchaos client` (none: everything comes through the protocol).
#[derive(Debug, clap::Args)]
pub struct ClientArgs {}

/// An open librdkafka producer or consumer.
pub enum RdkafkaClient {
    Producer(ProducerClient),
    Consumer(ConsumerClient),
}

impl RdkafkaClient {
    /// Opens `role` with the harness's `config`.
    pub fn open(role: Role, config: &BTreeMap<String, String>) -> Result<Self, String> {
        match role {
            Role::Producer => ProducerClient::open(config).map(RdkafkaClient::Producer),
            Role::Consumer => ConsumerClient::open(config).map(RdkafkaClient::Consumer),
        }
    }

    /// Handles one request after `open`: a send is answered when its delivery report comes,
    /// everything else before this returns (a consumer's calls block).
    pub fn handle(&self, operation: Operation, respond: Responder) {
        let refuse = |role: &str, op: &str| {
            Reply::error(
                0,
                Outcome::Fail,
                format!("bad request: a {role} cannot {op}"),
            )
        };
        match (self, operation) {
            (
                RdkafkaClient::Producer(producer),
                Operation::Send {
                    topic,
                    key,
                    value,
                    partition,
                },
            ) => producer.send(&topic, key.as_deref(), &value, partition, respond),
            (RdkafkaClient::Producer(producer), Operation::Close { timeout_ms }) => {
                producer.close(Duration::from_millis(timeout_ms));
                respond(Reply::ok(0));
            }
            (RdkafkaClient::Producer(_), operation) => {
                respond(refuse("producer", operation.name()))
            }
            (RdkafkaClient::Consumer(consumer), operation) => {
                respond(handle_consumer(consumer, operation))
            }
        }
    }
}

/// A consumer's answer to one request.
fn handle_consumer(consumer: &ConsumerClient, operation: Operation) -> Reply {
    match operation {
        Operation::Assign { topic, positions } => consumer.assign(&topic, &positions),
        Operation::Subscribe { topics } => consumer.subscribe(&topics),
        Operation::Poll {
            max_records,
            timeout_ms,
        } => consumer.poll(max_records as usize, Duration::from_millis(timeout_ms)),
        Operation::Commit { topic, offsets } => consumer.commit(&topic, offsets.as_deref()),
        Operation::Watermarks {
            topic,
            partition,
            timeout_ms,
        } => consumer.watermarks(&topic, partition, Duration::from_millis(timeout_ms)),
        Operation::FinalRead {
            topic,
            partition,
            timeout_ms,
        } => consumer.final_read(&topic, partition, Duration::from_millis(timeout_ms)),
        Operation::Close { .. } => consumer.close(),
        Operation::Open { .. } => {
            Reply::error(0, Outcome::Fail, "bad request: the client is already open")
        }
        Operation::Send { .. } => {
            Reply::error(0, Outcome::Fail, "bad request: a consumer cannot send")
        }
    }
}

/// librdkafka's config: its log level and the worker's `defaults`, then the harness's config.
/// The harness uses Kafka's (Java client's) names, which librdkafka shares but for a few.
pub fn librdkafka_config(
    defaults: &[(&str, &str)],
    config: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut client_config = ClientConfig::new();
    client_config.set("log_level", "3");
    for (key, value) in defaults {
        client_config.set(*key, *value);
    }
    for (key, value) in config {
        let key = match key.as_str() {
            "fetch.max.wait.ms" => "fetch.wait.max.ms",
            key => key,
        };
        let value = match (key, value.as_str()) {
            ("auto.offset.reset", "none") => "error",
            (_, value) => value,
        };
        client_config.set(key, value);
    }
    client_config
}

/// `kchaos client`: hello, then requests until `close` or the end of stdin.
pub fn run(_args: ClientArgs) -> anyhow::Result<ExitCode> {
    let crash_plan = CrashPlan::from_env()?;
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let output = Output::start().context("starting the stdout writer")?;
    output.send(&Hello::new(
        "librdkafka",
        &version,
        &format!("kchaos client {}", env!("CARGO_PKG_VERSION")),
    ));
    let mut client: Option<RdkafkaClient> = None;
    let mut process: u64 = 0;
    let mut handled: u64 = 0;
    let stdin = std::io::stdin();
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, stdin.lock());
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .context("reading stdin")?
            == 0
        {
            // The harness is gone (or closed our stdin): nothing to answer any more.
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request: Request = match serde_json::from_slice(&line) {
            Ok(request) => request,
            Err(error) => {
                refuse_line(&output, &line, &error)?;
                continue;
            }
        };
        let respond = output.responder(request.id);
        match request.operation {
            Operation::Open {
                process: number,
                role,
                config,
            } => {
                if client.is_some() {
                    respond(Reply::error(
                        0,
                        Outcome::Fail,
                        "bad request: the client is already open",
                    ));
                    continue;
                }
                match RdkafkaClient::open(role, &config) {
                    Ok(opened) => {
                        tracing::info!("client {number}: {} open", role.name());
                        process = number;
                        client = Some(opened);
                        respond(Reply::ok(0));
                    }
                    Err(error) => respond(Reply::error(0, Outcome::Fail, error)),
                }
            }
            Operation::Close { timeout_ms } => {
                if let Some(client) = &client {
                    client.handle(Operation::Close { timeout_ms }, respond);
                } else {
                    respond(Reply::ok(0));
                }
                break;
            }
            operation => match &client {
                Some(client) => client.handle(operation, respond),
                None => respond(Reply::error(
                    0,
                    Outcome::Fail,
                    "bad request: the first request must be open",
                )),
            },
        }
        handled += 1;
        crash_plan.after_request(process, handled);
    }
    drop(client);
    output.finish();
    Ok(ExitCode::SUCCESS)
}

/// A line that is not a request: answered `fail` if it has an id, else the worker gives up
/// (exit status 2), since it cannot say which request it could not read.
fn refuse_line(output: &Output, line: &[u8], error: &serde_json::Error) -> anyhow::Result<()> {
    let id = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|value| value.get("id").and_then(serde_json::Value::as_u64));
    match id {
        Some(id) => {
            output.responder(id)(Reply::error(
                0,
                Outcome::Fail,
                format!("bad request: {error}"),
            ));
            Ok(())
        }
        None => anyhow::bail!(
            "a line that is not a request: {error}: {}",
            String::from_utf8_lossy(&line[..line.len().min(200)]).trim()
        ),
    }
}

/// The test hook: which process crashes after how many requests.
#[derive(Debug, Default, PartialEq, Eq)]
struct CrashPlan {
    after: Vec<(u64, u64)>,
}

impl CrashPlan {
    /// `KCHAOS_TEST_CLIENT_SIGSEGV=PROCESS:REQUESTS[,PROCESS:REQUESTS...]`.
    fn from_env() -> anyhow::Result<Self> {
        match std::env::var(SIGSEGV_ENV) {
            Ok(text) => Self::parse(&text),
            Err(_) => Ok(CrashPlan::default()),
        }
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let after =
            text.split(',')
                .filter(|part| !part.trim().is_empty())
                .map(|part| {
                    let (process, requests) = part.trim().split_once(':').with_context(|| {
                        format!("{SIGSEGV_ENV}: `{part}` is not PROCESS:REQUESTS")
                    })?;
                    Ok((
                        process
                            .parse()
                            .with_context(|| format!("{SIGSEGV_ENV}: bad process in `{part}`"))?,
                        requests
                            .parse()
                            .with_context(|| format!("{SIGSEGV_ENV}: bad count in `{part}`"))?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?;
        Ok(CrashPlan { after })
    }

    /// Raises SIGSEGV (with its default action: the process dies of signal 11) if `process`
    /// has handled its planned number of requests.
    fn after_request(&self, process: u64, handled: u64) {
        if self.after.contains(&(process, handled)) {
            eprintln!("kchaos client {process}: {SIGSEGV_ENV}: SIGSEGV after {handled} requests");
            // SAFETY: resetting a signal's action and raising it; Rust's own SIGSEGV handler
            // (stack overflow detection) would otherwise swallow a raised, not faulted, signal.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_plan_names_processes_and_counts() {
        assert_eq!(
            CrashPlan::parse("1:200, 5:3").ok(),
            Some(CrashPlan {
                after: vec![(1, 200), (5, 3)]
            })
        );
        assert!(CrashPlan::parse("1").is_err());
        assert!(CrashPlan::parse("x:2").is_err());
        assert_eq!(CrashPlan::parse("").ok(), Some(CrashPlan::default()));
    }

    #[test]
    fn kafka_names_become_librdkafkas_where_they_differ() {
        let config = BTreeMap::from([
            ("fetch.max.wait.ms".to_string(), "100".to_string()),
            ("auto.offset.reset".to_string(), "none".to_string()),
            ("acks".to_string(), "all".to_string()),
        ]);
        let client_config = librdkafka_config(&[("acks", "1")], &config);
        assert_eq!(client_config.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(client_config.get("auto.offset.reset"), Some("error"));
        assert_eq!(client_config.get("acks"), Some("all"));
        assert_eq!(client_config.get("log_level"), Some("3"));
    }
}
