//! The Kafka admin client shared by `kchaos topics`, `configs` and `elect`: bootstrap, metadata,
//! the controller, and Kafka's errors by name. It speaks only the Kafka protocol (the
//! `kafka-protocol` codecs over [`connection::Connection`]), so the tools work against Apache
//! Kafka as well as our broker.
//!
//! As Kafka's tools do, requests that only the controller may answer (CreateTopics, DeleteTopics,
//! ElectLeaders) go to the controller named by the metadata, retried a bounded number of times
//! while the answer is NOT_CONTROLLER; everything else goes to the first bootstrap server that
//! answers.

pub mod connection;

use std::process::ExitCode;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use connection::Connection;

/// How long each request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a bootstrap server may take to connect and answer ApiVersions before the next one
/// is tried.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);
/// The newest Metadata version we speak.
const METADATA_VERSION_MAX: i16 = 12;
/// How often a controller request is tried while the answer is NOT_CONTROLLER.
const CONTROLLER_ATTEMPTS: u32 = 5;
/// The pause between those attempts.
const CONTROLLER_BACKOFF: Duration = Duration::from_millis(300);

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address}: timed out after {timeout_ms} ms waiting for {what}")]
    Timeout {
        address: String,
        what: String,
        timeout_ms: u128,
    },
    #[error("i/o with {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("bad answer from {address}: {message}")]
    Protocol { address: String, message: String },
    #[error("no bootstrap server answered: {0}")]
    NoBootstrap(String),
    /// The broker does not list the API (or no version we speak).
    #[error("UNSUPPORTED_VERSION: the broker at {address} does not support {}", api_name(*api))]
    Unsupported { address: String, api: ApiKey },
    /// The broker answered with a Kafka error.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The command itself refuses (a missing topic, a config that is not set).
    #[error("{0}")]
    Refused(String),
}

impl AdminError {
    /// Whether the cluster answered (exit 1), rather than could not be asked (exit 2).
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            AdminError::Unsupported { .. } | AdminError::Kafka(_) | AdminError::Refused(_)
        )
    }
}

/// A Kafka error code with the broker's message, shown as Kafka's name and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    /// `None` for code 0.
    pub fn from_code(code: i16, message: Option<&StrBytes>) -> Option<Self> {
        (code != 0).then(|| KafkaError {
            code,
            message: message
                .map(|m| m.to_string())
                .filter(|m| !m.trim().is_empty()),
        })
    }

    /// `NAME: message`, or only the name when Kafka has no words for it.
    fn describe(&self) -> String {
        let message = self.message();
        if message.is_empty() {
            self.name()
        } else {
            format!("{}: {message}", self.name())
        }
    }

    /// Kafka's name, e.g. `INVALID_REPLICATION_FACTOR`.
    pub fn name(&self) -> String {
        error_name(self.code)
    }

    /// The broker's message, else Kafka's description of the code.
    pub fn message(&self) -> String {
        self.message
            .clone()
            .unwrap_or_else(|| kafka_description(self.code).to_string())
    }
}

/// Kafka's own description of the errors the admin tools meet most (Errors.java).
fn kafka_description(code: i16) -> &'static str {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::UnknownTopicOrPartition) => {
            "This server does not host this topic-partition."
        }
        Some(ResponseError::LeaderNotAvailable) => {
            "There is no leader for this topic-partition as we are in the middle of a leadership election."
        }
        Some(ResponseError::NotController) => {
            "This is not the correct controller for this cluster."
        }
        Some(ResponseError::UnsupportedVersion) => "The version of API is not supported.",
        Some(ResponseError::TopicAlreadyExists) => "Topic with this name already exists.",
        Some(ResponseError::InvalidPartitions) => "Number of partitions is below 1.",
        Some(ResponseError::InvalidReplicationFactor) => {
            "Replication factor is below 1 or larger than the number of available brokers."
        }
        Some(ResponseError::InvalidConfig) => "Configuration is invalid.",
        Some(ResponseError::InvalidRequest) => {
            "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details."
        }
        Some(ResponseError::PolicyViolation) => {
            "Request parameters do not satisfy the configured policy."
        }
        Some(ResponseError::PreferredLeaderNotAvailable) => {
            "The preferred leader was not available."
        }
        Some(ResponseError::EligibleLeadersNotAvailable) => {
            "Eligible topic partition leaders are not available."
        }
        Some(ResponseError::ElectionNotNeeded) => "Leader election not needed for topic partition.",
        Some(ResponseError::TopicDeletionDisabled) => "Topic deletion is disabled.",
        Some(ResponseError::InvalidTopicException) => {
            "The request attempted to perform an operation on an invalid topic."
        }
        _ => "",
    }
}

pub use kafka_wire::names::{api_name, error_name};

/// Kafka's NOT_CONTROLLER.
pub const NOT_CONTROLLER: i16 = ResponseError::NotController.code();

/// `--bootstrap-server host:port[,host:port...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap(pub Vec<String>);

impl std::str::FromStr for Bootstrap {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_bootstrap(text).map(Bootstrap)
    }
}

/// Parses `host:port[,host:port...]`.
pub fn parse_bootstrap(text: &str) -> Result<Vec<String>, String> {
    let addresses: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(String::from)
        .collect();
    if addresses.is_empty() {
        return Err("expected host:port[,host:port...]".to_string());
    }
    for address in &addresses {
        let port = address.rsplit_once(':').map(|(_, port)| port);
        if port.and_then(|port| port.parse::<u16>().ok()).is_none() {
            return Err(format!("`{address}` is not host:port"));
        }
    }
    Ok(addresses)
}

/// A session with a cluster: one connection to a bootstrap server that answered.
pub struct AdminClient {
    connection: Connection,
    timeout: Duration,
}

impl AdminClient {
    /// Connects to the first of `bootstrap` that answers ApiVersions.
    pub async fn connect(bootstrap: &[String], timeout: Duration) -> Result<Self, AdminError> {
        let mut errors = Vec::new();
        for address in bootstrap {
            let opened = tokio::time::timeout(
                BOOTSTRAP_TIMEOUT.min(timeout),
                connection::open(address, timeout),
            )
            .await
            .map(|opened| opened.map_err(AdminError::from))
            .unwrap_or_else(|_| {
                Err(AdminError::Timeout {
                    address: address.clone(),
                    what: "the answer to ApiVersions".to_string(),
                    timeout_ms: BOOTSTRAP_TIMEOUT.min(timeout).as_millis(),
                })
            });
            match opened {
                Ok(connection) => {
                    return Ok(AdminClient {
                        connection,
                        timeout,
                    });
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        Err(AdminError::NoBootstrap(errors.join("; ")))
    }

    /// The bootstrap connection.
    pub fn broker(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// Metadata of `topics`, or of every topic when `None`.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, AdminError> {
        let version = self
            .connection
            .version::<MetadataRequest>(METADATA_VERSION_MAX)?;
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|name| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                })
                .collect()
        });
        let mut request = MetadataRequest::default().with_topics(topics);
        if version >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        Ok(self.connection.call(version, &request).await?)
    }

    /// The names of every topic, sorted.
    pub async fn topic_names(&mut self) -> Result<Vec<String>, AdminError> {
        let metadata = self.metadata(None).await?;
        let mut names: Vec<String> = metadata
            .topics
            .iter()
            .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A connection to broker `id` (its address from the metadata).
    pub async fn connection_to(&mut self, id: i32) -> Result<Connection, AdminError> {
        let metadata = self.metadata(Some(&[])).await?;
        let broker = metadata
            .brokers
            .iter()
            .find(|b| b.node_id.0 == id)
            .ok_or_else(|| AdminError::Refused(format!("Broker {id} is not a live broker")))?;
        Ok(connection::open(&format!("{}:{}", broker.host, broker.port), self.timeout).await?)
    }

    /// A connection to the controller the metadata names, else to the bootstrap server.
    async fn controller(&mut self) -> Result<Option<Connection>, AdminError> {
        let metadata = self.metadata(Some(&[])).await?;
        let controller = metadata.controller_id.0;
        let Some(broker) = metadata.brokers.iter().find(|b| b.node_id.0 == controller) else {
            return Ok(None);
        };
        let address = format!("{}:{}", broker.host, broker.port);
        if address == self.connection.address() {
            return Ok(None);
        }
        Ok(Some(connection::open(&address, self.timeout).await?))
    }

    /// Sends `request` to the controller, again (bounded) while `not_controller` says the
    /// answer is NOT_CONTROLLER.
    pub async fn to_controller<Req: Request>(
        &mut self,
        ours_max: i16,
        request: &Req,
        not_controller: impl Fn(&Req::Response) -> bool,
    ) -> Result<(i16, Req::Response), AdminError> {
        let mut attempt = 1;
        loop {
            let outcome = match self.controller().await {
                Ok(Some(mut controller)) => controller
                    .request(ours_max, request)
                    .await
                    .map_err(AdminError::from),
                Ok(None) => self
                    .connection
                    .request(ours_max, request)
                    .await
                    .map_err(AdminError::from),
                Err(error) => Err(error),
            };
            let last = attempt >= CONTROLLER_ATTEMPTS;
            match outcome {
                Ok(answer) if last || !not_controller(&answer.1) => return Ok(answer),
                // The cluster refused, or the bootstrap server is gone: asking again won't help.
                Err(error) if last || error.is_answer() => return Err(error),
                // NOT_CONTROLLER, or the controller moved or died meanwhile.
                Ok(_) | Err(_) => {}
            }
            attempt += 1;
            tokio::time::sleep(CONTROLLER_BACKOFF).await;
        }
    }
}

/// Runs an admin command on a fresh runtime: the cluster's refusals are printed as Kafka's
/// tools print them (`failure_prefix`, then the error) and exit 1; a cluster that cannot be
/// reached is an `Err` (exit 2).
pub fn run_command<F>(failure_prefix: &str, command: impl FnOnce() -> F) -> anyhow::Result<ExitCode>
where
    F: std::future::Future<Output = Result<ExitCode, AdminError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(command()) {
        Ok(code) => Ok(code),
        Err(error) if error.is_answer() => {
            eprintln!("{failure_prefix}{error}");
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_are_host_port() {
        assert_eq!(
            parse_bootstrap("localhost:9092, 127.0.0.1:9093"),
            Ok(vec!["localhost:9092".into(), "127.0.0.1:9093".into()])
        );
        assert!(parse_bootstrap("localhost").is_err());
        assert!(parse_bootstrap("").is_err());
    }
}
