//! `kchaos topics`: create, describe, list and delete topics over the Kafka protocol, like
//! kafka-topics, with the same flags and the same output:
//!
//! ```text
//! Topic: t<TAB>TopicId: ...<TAB>PartitionCount: 3<TAB>ReplicationFactor: 3<TAB>Configs: ...
//! <TAB>Topic: t<TAB>Partition: 0<TAB>Leader: 3<TAB>Replicas: 3,2,1<TAB>Isr: 3,2,1
//! ```
//!
//! `Leader: none` for a partition without a leader; `Configs:` lists the topic's own overrides
//! (config source DYNAMIC_TOPIC_CONFIG), not the values it takes from the broker or Kafka's
//! defaults, as kafka-topics does (`kchaos configs --describe --all` shows every value). `--topic` is an exact name (kafka-topics
//! also takes a regular expression).

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::admin::{AdminClient, AdminError, Bootstrap, KafkaError, NOT_CONTROLLER};

const CREATE_TOPICS_VERSION_MAX: i16 = 7;
const DELETE_TOPICS_VERSION_MAX: i16 = 6;
const DESCRIBE_CONFIGS_VERSION_MAX: i16 = 4;
/// DescribeConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs source of a value set on the topic itself (KIP-226).
const DYNAMIC_TOPIC_CONFIG_SOURCE: i8 = 1;
/// What kafka-topics prints before a command's error.
const FAILURE_PREFIX: &str = "Error while executing topic command : ";

/// Arguments of `kchaos topics` (kafka-topics' flags).
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("action")
        .required(true)
        .args(["create", "describe", "list", "delete"])
))]
pub struct TopicsArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "SERVERS")]
    pub bootstrap_server: Bootstrap,
    /// Create a topic.
    #[arg(long, requires = "topic")]
    pub create: bool,
    /// Describe the topic (every topic without --topic).
    #[arg(long)]
    pub describe: bool,
    /// List the topics.
    #[arg(long)]
    pub list: bool,
    /// Delete a topic.
    #[arg(long, requires = "topic")]
    pub delete: bool,
    /// The topic (an exact name).
    #[arg(long)]
    pub topic: Option<String>,
    /// Number of partitions of a new topic (the broker's num.partitions when absent).
    #[arg(long, requires = "create", value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replication factor of a new topic (the broker's default.replication.factor when absent).
    #[arg(long, requires = "create", value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: Option<i16>,
    /// A topic config override for the new topic, key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", requires = "create", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    /// With --create: no error if the topic exists.
    #[arg(long, requires = "create")]
    pub if_not_exists: bool,
    /// With --describe or --delete: no error if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// Leave out internal topics.
    #[arg(long)]
    pub exclude_internal: bool,
    /// With --describe: only partitions whose ISR is smaller than their replica list.
    #[arg(long, requires = "describe")]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions whose leader is none or not live.
    #[arg(long, requires = "describe")]
    pub unavailable_partitions: bool,
}

/// `key=value` (for clap).
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{text}` is not key=value")),
    }
}

/// Runs the action; exit 1 with Kafka's error when the cluster refuses.
pub fn run(args: TopicsArgs) -> anyhow::Result<ExitCode> {
    super::admin::run_command(FAILURE_PREFIX, || async move {
        let mut client =
            AdminClient::connect(&args.bootstrap_server.0, super::admin::REQUEST_TIMEOUT).await?;
        if args.create {
            create(&mut client, &args).await
        } else if args.describe {
            describe(&mut client, &args).await
        } else if args.list {
            list(&mut client, &args).await
        } else {
            delete(&mut client, &args).await
        }
    })
}

async fn create(client: &mut AdminClient, args: &TopicsArgs) -> Result<ExitCode, AdminError> {
    let name = args.topic.clone().unwrap_or_default();
    if name.contains('.') || name.contains('_') {
        println!(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both."
        );
    }
    let configs = args
        .configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.clone())))
                .with_num_partitions(args.partitions.unwrap_or(-1))
                .with_replication_factor(args.replication_factor.unwrap_or(-1))
                .with_configs(configs),
        ])
        .with_timeout_ms(super::admin::REQUEST_TIMEOUT.as_millis() as i32);
    let (_, response): (i16, CreateTopicsResponse) = client
        .to_controller(
            CREATE_TOPICS_VERSION_MAX,
            &request,
            |response: &CreateTopicsResponse| {
                response
                    .topics
                    .iter()
                    .any(|t| t.error_code == NOT_CONTROLLER)
            },
        )
        .await?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| AdminError::Refused(format!("the answer does not name topic {name}")))?;
    if result.error_code == ResponseError::TopicAlreadyExists.code() && args.if_not_exists {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(error) = KafkaError::from_code(result.error_code, result.error_message.as_ref()) {
        return Err(error.into());
    }
    println!("Created topic {name}.");
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &mut AdminClient, args: &TopicsArgs) -> Result<ExitCode, AdminError> {
    for name in selected_topics(client, args).await? {
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn delete(client: &mut AdminClient, args: &TopicsArgs) -> Result<ExitCode, AdminError> {
    let names = selected_topics(client, args).await?;
    if names.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let topic_names: Vec<TopicName> = names
        .iter()
        .map(|name| TopicName(StrBytes::from_string(name.clone())))
        .collect();
    let version = client
        .broker()
        .version::<DeleteTopicsRequest>(DELETE_TOPICS_VERSION_MAX)?;
    let request = if version >= 6 {
        DeleteTopicsRequest::default().with_topics(
            topic_names
                .into_iter()
                .map(|name| DeleteTopicState::default().with_name(Some(name)))
                .collect(),
        )
    } else {
        DeleteTopicsRequest::default().with_topic_names(topic_names)
    }
    .with_timeout_ms(super::admin::REQUEST_TIMEOUT.as_millis() as i32);
    let (_, response): (i16, DeleteTopicsResponse) = client
        .to_controller(version, &request, |response: &DeleteTopicsResponse| {
            response
                .responses
                .iter()
                .any(|t| t.error_code == NOT_CONTROLLER)
        })
        .await?;
    for result in &response.responses {
        if let Some(error) = KafkaError::from_code(result.error_code, result.error_message.as_ref())
        {
            return Err(error.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The topics the command acts on, sorted: every topic, or the one named by --topic, which
/// must exist unless --if-exists (kafka-topics' rule).
async fn selected_topics(
    client: &mut AdminClient,
    args: &TopicsArgs,
) -> Result<Vec<String>, AdminError> {
    let metadata = client.metadata(None).await?;
    let mut names: Vec<String> = metadata
        .topics
        .iter()
        .filter(|topic| !(args.exclude_internal && topic.is_internal))
        .filter_map(|topic| topic.name.as_ref().map(|name| name.0.to_string()))
        .filter(|name| args.topic.as_ref().is_none_or(|wanted| wanted == name))
        .collect();
    names.sort();
    if let Some(topic) = &args.topic
        && names.is_empty()
        && !args.if_exists
        && !args.list
    {
        return Err(AdminError::Refused(format!(
            "Topic '{topic}' does not exist as expected"
        )));
    }
    Ok(names)
}

async fn describe(client: &mut AdminClient, args: &TopicsArgs) -> Result<ExitCode, AdminError> {
    let names = selected_topics(client, args).await?;
    if names.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let metadata = client.metadata(Some(&names)).await?;
    let configs = topic_overrides(client, &names).await?;
    let live: BTreeSet<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    let filtering = args.under_replicated_partitions || args.unavailable_partitions;
    let mut topics: Vec<_> = metadata.topics.iter().collect();
    topics.sort_by_key(|topic| topic.name.as_ref().map(|name| name.0.to_string()));
    for topic in topics {
        let Some(name) = topic.name.as_ref().map(|name| name.0.to_string()) else {
            continue;
        };
        if topic.error_code == ResponseError::UnknownTopicOrPartition.code() {
            continue; // deleted meanwhile
        }
        if topic.partitions.is_empty()
            && let Some(error) = KafkaError::from_code(topic.error_code, None)
        {
            return Err(error.into());
        }
        let mut partitions: Vec<_> = topic.partitions.iter().collect();
        partitions.sort_by_key(|partition| partition.partition_index);
        if !filtering {
            let description = TopicDescription {
                name: &name,
                topic_id: *topic.topic_id.as_bytes(),
                partition_count: partitions.len(),
                replication_factor: partitions
                    .first()
                    .map_or(0, |partition| partition.replica_nodes.len()),
                configs: configs.get(&name).map(Vec::as_slice).unwrap_or_default(),
            };
            println!("{}", description.line());
        }
        for partition in partitions {
            let state = PartitionDescription {
                topic: &name,
                partition: partition.partition_index,
                leader: (partition.leader_id.0 >= 0).then_some(partition.leader_id.0),
                replicas: partition.replica_nodes.iter().map(|id| id.0).collect(),
                isr: partition.isr_nodes.iter().map(|id| id.0).collect(),
            };
            let under_replicated = state.isr.len() < state.replicas.len();
            let unavailable = state.leader.is_none_or(|leader| !live.contains(&leader));
            if (args.under_replicated_partitions && !under_replicated)
                || (args.unavailable_partitions && !unavailable)
            {
                continue;
            }
            println!("{}", state.line());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each topic's overrides (source DYNAMIC_TOPIC_CONFIG), in the broker's order. Empty when the
/// broker does not serve DescribeConfigs.
async fn topic_overrides(
    client: &mut AdminClient,
    names: &[String],
) -> Result<BTreeMap<String, Vec<(String, String)>>, AdminError> {
    if !client.broker().supports(ApiKey::DescribeConfigs) {
        return Ok(BTreeMap::new());
    }
    let request = DescribeConfigsRequest::default().with_resources(
        names
            .iter()
            .map(|name| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(name.clone()))
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    let (_, response): (i16, DescribeConfigsResponse) = client
        .broker()
        .request(DESCRIBE_CONFIGS_VERSION_MAX, &request)
        .await?;
    Ok(response
        .results
        .iter()
        .filter(|result| result.error_code == 0)
        .map(|result| {
            let configs = result
                .configs
                .iter()
                .filter(|entry| entry.config_source == DYNAMIC_TOPIC_CONFIG_SOURCE)
                .map(|entry| {
                    let value = entry
                        .value
                        .as_ref()
                        .map_or_else(|| "null".to_string(), |value| value.to_string());
                    (entry.name.to_string(), value)
                })
                .collect();
            (result.resource_name.to_string(), configs)
        })
        .collect())
}

/// The first line of a topic's description.
struct TopicDescription<'a> {
    name: &'a str,
    topic_id: [u8; 16],
    partition_count: usize,
    replication_factor: usize,
    configs: &'a [(String, String)],
}

impl TopicDescription<'_> {
    fn line(&self) -> String {
        let mut line = format!("Topic: {}", self.name);
        if self.topic_id != [0; 16] {
            line.push_str(&format!("\tTopicId: {}", kafka_uuid(&self.topic_id)));
        }
        let configs: Vec<String> = self
            .configs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        line.push_str(&format!(
            "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            self.partition_count,
            self.replication_factor,
            configs.join(",")
        ));
        line
    }
}

/// One partition's line.
struct PartitionDescription<'a> {
    topic: &'a str,
    partition: i32,
    leader: Option<i32>,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

impl PartitionDescription<'_> {
    fn line(&self) -> String {
        let ids = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            self.topic,
            self.partition,
            self.leader
                .map_or_else(|| "none".to_string(), |leader| leader.to_string()),
            ids(&self.replicas),
            ids(&self.isr)
        )
    }
}

/// A topic id as Kafka prints it: URL-safe base64 without padding.
fn kafka_uuid(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for sextet in sextets.iter().take(chunk.len() + 1) {
            out.push(char::from(ALPHABET[*sextet as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lines_read_like_kafka_topics() {
        let line = PartitionDescription {
            topic: "t",
            partition: 0,
            leader: Some(3),
            replicas: vec![3, 2, 1],
            isr: vec![3, 2, 1],
        }
        .line();
        assert_eq!(
            line,
            "\tTopic: t\tPartition: 0\tLeader: 3\tReplicas: 3,2,1\tIsr: 3,2,1"
        );
        let leaderless = PartitionDescription {
            topic: "t",
            partition: 1,
            leader: None,
            replicas: vec![1, 2],
            isr: vec![1],
        }
        .line();
        assert!(leaderless.contains("\tLeader: none\t"), "{leaderless}");
    }

    #[test]
    fn topic_line_leaves_out_a_zero_id() {
        let configs = vec![("min.insync.replicas".to_string(), "2".to_string())];
        let line = TopicDescription {
            name: "t",
            topic_id: [0; 16],
            partition_count: 3,
            replication_factor: 3,
            configs: &configs,
        }
        .line();
        assert_eq!(
            line,
            "Topic: t\tPartitionCount: 3\tReplicationFactor: 3\tConfigs: min.insync.replicas=2"
        );
    }

    #[test]
    fn topic_ids_are_url_safe_base64_without_padding() {
        // Kafka's Uuid.toString of (1, 2): AAAAAAAAAAEAAAAAAAAAAg.
        let mut bytes = [0u8; 16];
        bytes[7] = 1;
        bytes[15] = 2;
        assert_eq!(kafka_uuid(&bytes), "AAAAAAAAAAEAAAAAAAAAAg");
        assert_eq!(kafka_uuid(&[0xff; 16]), "_____________________w");
    }

    #[test]
    fn configs_are_key_value() {
        assert_eq!(
            parse_key_value("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert!(parse_key_value("retention.ms").is_err());
    }
}
