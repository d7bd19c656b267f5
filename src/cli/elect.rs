//! `kchaos elect`: preferred and unclean leader election over the Kafka protocol (ElectLeaders,
//! sent to the controller), like kafka-leader-election, with its output:
//!
//! ```text
//! Successfully completed leader election (PREFERRED) for partitions t-0, t-1
//! Valid replica already elected for partitions t-2
//! Error completing leader election (PREFERRED) for partition: t-3: PREFERRED_LEADER_NOT_AVAILABLE: ...
//! ```
//!
//! Exit 1 when any partition could not be elected. The partitions: `--topic t --partition 0`,
//! `--all-topic-partitions`, or kafka-leader-election's `--path-to-json-file`.

use std::process::ExitCode;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::admin::{AdminClient, AdminError, Bootstrap, KafkaError, NOT_CONTROLLER};

const ELECT_LEADERS_VERSION_MAX: i16 = 2;

/// Arguments of `kchaos elect` (kafka-leader-election's flags).
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("partitions")
        .required(true)
        .args(["topic", "all_topic_partitions", "path_to_json_file"])
))]
pub struct ElectArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "SERVERS")]
    pub bootstrap_server: Bootstrap,
    /// preferred: move leadership to the first replica if it is in the ISR; unclean: elect an
    /// out-of-sync live replica when no ISR member is alive.
    #[arg(long, value_enum, ignore_case = true)]
    pub election_type: ElectionType,
    /// The topic of the partition to elect.
    #[arg(long, requires = "partition")]
    pub topic: Option<String>,
    /// The partition to elect.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Elect every partition of every topic.
    #[arg(long)]
    pub all_topic_partitions: bool,
    /// The partitions to elect, as kafka-leader-election reads them:
    /// `{"partitions": [{"topic": "t", "partition": 0}, ...]}`.
    #[arg(long, value_name = "FILE")]
    pub path_to_json_file: Option<std::path::PathBuf>,
}

/// The `--path-to-json-file` format.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionsFile {
    partitions: Vec<PartitionEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionEntry {
    topic: String,
    partition: i32,
}

/// The partitions a JSON file names, grouped by topic (sorted, without repeats).
fn partitions_from_json(text: &str) -> Result<Vec<TopicPartitions>, String> {
    let file: PartitionsFile = serde_json::from_str(text).map_err(|error| error.to_string())?;
    if file.partitions.is_empty() {
        return Err("the file names no partitions".to_string());
    }
    let mut by_topic: std::collections::BTreeMap<String, std::collections::BTreeSet<i32>> =
        std::collections::BTreeMap::new();
    for entry in file.partitions {
        by_topic
            .entry(entry.topic)
            .or_default()
            .insert(entry.partition);
    }
    Ok(by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions.into_iter().collect())
        })
        .collect())
}

/// Kafka's ElectionType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// Runs the election; exit 1 if any partition failed.
pub fn run(args: ElectArgs) -> anyhow::Result<ExitCode> {
    super::admin::run_command("Error while making request\n", || async move {
        let mut client =
            AdminClient::connect(&args.bootstrap_server.0, super::admin::REQUEST_TIMEOUT).await?;
        elect(&mut client, &args).await
    })
}

async fn elect(client: &mut AdminClient, args: &ElectArgs) -> Result<ExitCode, AdminError> {
    let topic_partitions = match (&args.topic, args.partition, &args.path_to_json_file) {
        (Some(topic), Some(partition), _) => Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(vec![partition]),
        ]),
        (_, _, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                AdminError::Refused(format!("cannot read {}: {error}", path.display()))
            })?;
            Some(partitions_from_json(&text).map_err(|error| {
                AdminError::Refused(format!(
                    "{} is not a partitions file: {error}",
                    path.display()
                ))
            })?)
        }
        _ => None,
    };
    let mut request = ElectLeadersRequest::default()
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(super::admin::REQUEST_TIMEOUT.as_millis() as i32);
    let version = client
        .broker()
        .version::<ElectLeadersRequest>(ELECT_LEADERS_VERSION_MAX)?;
    if version >= 1 {
        request = request.with_election_type(args.election_type.code());
    } else if args.election_type == ElectionType::Unclean {
        return Err(AdminError::Unsupported {
            address: client.broker().address().to_string(),
            api: ApiKey::ElectLeaders,
        });
    }
    let (_, response): (i16, ElectLeadersResponse) = client
        .to_controller(version, &request, |response: &ElectLeadersResponse| {
            response.error_code == NOT_CONTROLLER
        })
        .await?;
    if let Some(error) = KafkaError::from_code(response.error_code, None) {
        return Err(error.into());
    }
    let outcome = Outcome::of(&response);
    let election = args.election_type.name();
    if !outcome.succeeded.is_empty() {
        println!(
            "Successfully completed leader election ({election}) for partitions {}",
            outcome.succeeded.join(", ")
        );
    }
    if !outcome.not_needed.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            outcome.not_needed.join(", ")
        );
    }
    for (partition, error) in &outcome.failed {
        println!(
            "Error completing leader election ({election}) for partition: {partition}: {error}"
        );
    }
    if outcome.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} replica(s) could not be elected", outcome.failed.len());
        Ok(ExitCode::from(1))
    }
}

/// The partitions (`topic-partition`, sorted) by what the election did to them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    succeeded: Vec<String>,
    not_needed: Vec<String>,
    failed: Vec<(String, KafkaError)>,
}

impl Outcome {
    fn of(response: &ElectLeadersResponse) -> Self {
        let mut outcome = Outcome::default();
        let mut results: Vec<(String, i32, i16, Option<&StrBytes>)> = response
            .replica_election_results
            .iter()
            .flat_map(|topic| {
                topic.partition_result.iter().map(|partition| {
                    (
                        topic.topic.0.to_string(),
                        partition.partition_id,
                        partition.error_code,
                        partition.error_message.as_ref(),
                    )
                })
            })
            .collect();
        results.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (topic, partition, code, message) in results {
            let name = format!("{topic}-{partition}");
            match KafkaError::from_code(code, message) {
                None => outcome.succeeded.push(name),
                Some(_) if code == ResponseError::ElectionNotNeeded.code() => {
                    outcome.not_needed.push(name)
                }
                Some(error) => outcome.failed.push((name, error)),
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };

    #[test]
    fn json_files_name_partitions_by_topic() {
        let partitions = partitions_from_json(
            r#"{"partitions": [{"topic": "b", "partition": 1}, {"topic": "a", "partition": 2},
                {"topic": "b", "partition": 0}, {"topic": "b", "partition": 1}]}"#,
        )
        .expect("valid");
        let flat: Vec<(String, Vec<i32>)> = partitions
            .iter()
            .map(|p| (p.topic.0.to_string(), p.partitions.clone()))
            .collect();
        assert_eq!(
            flat,
            vec![("a".to_string(), vec![2]), ("b".to_string(), vec![0, 1])]
        );
        assert!(partitions_from_json(r#"{"partitions": []}"#).is_err());
        assert!(partitions_from_json(r#"{"partitions": [{"topic": "a"}]}"#).is_err());
    }

    #[test]
    fn results_are_sorted_into_done_not_needed_and_failed() {
        let response = ElectLeadersResponse::default().with_replica_election_results(vec![
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partition_result(vec![
                    PartitionResult::default().with_partition_id(1),
                    PartitionResult::default()
                        .with_partition_id(0)
                        .with_error_code(ResponseError::ElectionNotNeeded.code()),
                    PartitionResult::default()
                        .with_partition_id(2)
                        .with_error_code(ResponseError::PreferredLeaderNotAvailable.code()),
                ]),
        ]);
        let outcome = Outcome::of(&response);
        assert_eq!(outcome.succeeded, vec!["t-1"]);
        assert_eq!(outcome.not_needed, vec!["t-0"]);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].0, "t-2");
        assert!(
            outcome.failed[0]
                .1
                .to_string()
                .starts_with("PREFERRED_LEADER_NOT_AVAILABLE")
        );
    }
}
