//! `kchaos configs`: describe and alter topic (and broker) configs over the Kafka protocol, like
//! kafka-configs: `--describe [--all]` prints
//!
//! ```text
//! Dynamic configs for topic t are:
//!   unclean.leader.election.enable=true sensitive=false synonyms={}
//! ```
//!
//! and `--alter --add-config k=v[,k2=v2] --delete-config k3` uses IncrementalAlterConfigs,
//! falling back to AlterConfigs (the whole set of overrides) on brokers that lack it. As in
//! kafka-configs, deleting a config that is not set is refused before anything is sent.

use std::collections::BTreeMap;
use std::process::ExitCode;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    alter_configs_request, incremental_alter_configs_request,
};
use kafka_protocol::protocol::StrBytes;

use super::admin::connection::Connection;
use super::admin::{AdminClient, AdminError, Bootstrap, KafkaError};

const DESCRIBE_CONFIGS_VERSION_MAX: i16 = 4;
const INCREMENTAL_ALTER_CONFIGS_VERSION_MAX: i16 = 1;
const ALTER_CONFIGS_VERSION_MAX: i16 = 2;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Arguments of `kchaos configs` (kafka-configs' flags).
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("action").required(true).args(["describe", "alter"])
))]
#[command(group(
    clap::ArgGroup::new("changes").multiple(true).args(["add_config", "delete_config"])
))]
#[command(group(clap::ArgGroup::new("entity").args(["entity_name", "topic"])))]
pub struct ConfigsArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "SERVERS")]
    pub bootstrap_server: Bootstrap,
    /// The kind of entity.
    #[arg(long, value_enum, required_unless_present = "topic")]
    pub entity_type: Option<EntityType>,
    /// The entity: a topic name or a broker id (every one when absent, with --describe).
    #[arg(long)]
    pub entity_name: Option<String>,
    /// Short for --entity-type topics --entity-name TOPIC.
    #[arg(long, conflicts_with = "entity_type")]
    pub topic: Option<String>,
    /// Show the entity's configs.
    #[arg(long)]
    pub describe: bool,
    /// With --describe: every config, not only the dynamic overrides.
    #[arg(long, requires = "describe")]
    pub all: bool,
    /// Change the entity's configs (with --add-config and/or --delete-config).
    #[arg(long, requires_all = ["changes", "entity"])]
    pub alter: bool,
    /// Configs to set: k=v[,k2=v2] (a value with commas in square brackets: k=[a,b]).
    #[arg(long, value_name = "K=V,...", requires = "alter")]
    pub add_config: Vec<ConfigList>,
    /// Configs to remove: k[,k2].
    #[arg(long, value_name = "K,...", value_delimiter = ',', requires = "alter")]
    pub delete_config: Vec<String>,
}

/// Which kind of entity the configs belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EntityType {
    Topics,
    Brokers,
}

impl EntityType {
    /// DescribeConfigs/AlterConfigs resource type.
    fn resource_type(self) -> i8 {
        match self {
            EntityType::Topics => 2,
            EntityType::Brokers => 4,
        }
    }

    /// The source of a dynamic override of this entity.
    fn dynamic_source(self) -> i8 {
        match self {
            EntityType::Topics => 1,
            EntityType::Brokers => 2,
        }
    }

    fn singular(self) -> &'static str {
        match self {
            EntityType::Topics => "topic",
            EntityType::Brokers => "broker",
        }
    }
}

/// `k=v[,k2=v2]`, kafka-configs' --add-config format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigList(pub Vec<(String, String)>);

impl std::str::FromStr for ConfigList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            "Invalid entity config: all configs to be added must be in the format \"key=val\"."
                .to_string()
        };
        let mut pairs = Vec::new();
        for item in split_outside_brackets(text) {
            let (key, value) = item.split_once('=').ok_or_else(invalid)?;
            let key = key.trim();
            if key.is_empty() || value.contains('=') && !value.contains('[') {
                return Err(invalid());
            }
            let value: String = value.chars().filter(|c| *c != '[' && *c != ']').collect();
            pairs.push((key.to_string(), value.trim().to_string()));
        }
        Ok(ConfigList(pairs))
    }
}

/// Splits on commas that are not inside `[...]`.
fn split_outside_brackets(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// What the command works on.
struct Entity {
    kind: EntityType,
    name: Option<String>,
}

/// Runs the action; exit 1 with Kafka's error when the cluster refuses.
pub fn run(args: ConfigsArgs) -> anyhow::Result<ExitCode> {
    let command_line: Vec<String> = std::env::args().skip(2).collect();
    let prefix = format!(
        "Error while executing config command with args '{}'\n",
        command_line.join(" ")
    );
    super::admin::run_command(&prefix, || async move {
        let entity = match &args.topic {
            Some(topic) => Entity {
                kind: EntityType::Topics,
                name: Some(topic.clone()),
            },
            None => Entity {
                kind: args.entity_type.unwrap_or(EntityType::Topics),
                name: args.entity_name.clone(),
            },
        };
        let mut client =
            AdminClient::connect(&args.bootstrap_server.0, super::admin::REQUEST_TIMEOUT).await?;
        if args.describe {
            describe(&mut client, &entity, args.all).await
        } else {
            let added: Vec<(String, String)> = args
                .add_config
                .iter()
                .flat_map(|list| list.0.iter().cloned())
                .collect();
            let deleted: Vec<String> = args
                .delete_config
                .iter()
                .map(|key| key.trim().to_string())
                .filter(|key| !key.is_empty())
                .collect();
            alter(&mut client, &entity, &added, &deleted).await
        }
    })
}

async fn describe(
    client: &mut AdminClient,
    entity: &Entity,
    all: bool,
) -> Result<ExitCode, AdminError> {
    let names = match &entity.name {
        Some(name) => vec![name.clone()],
        None => match entity.kind {
            EntityType::Topics => client.topic_names().await?,
            EntityType::Brokers => {
                let metadata = client.metadata(Some(&[])).await?;
                let mut ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
                ids.sort_unstable();
                ids.iter().map(i32::to_string).collect()
            }
        },
    };
    for name in names {
        let mut own = connection_for(client, entity.kind, &name).await?;
        let connection = match own.as_mut() {
            Some(connection) => connection,
            None => client.broker(),
        };
        let mut entries = describe_one(connection, entity.kind, &name).await?;
        if !all {
            entries.retain(|entry| entry.config_source == entity.kind.dynamic_source());
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let which = if all { "All" } else { "Dynamic" };
        println!("{which} configs for {} {name} are:", entity.kind.singular());
        for entry in entries {
            println!("  {}", entry_line(&entry));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `name=value sensitive=false synonyms={SOURCE:name=value, ...}`.
fn entry_line(entry: &DescribeConfigsResourceResult) -> String {
    let value = |value: &Option<StrBytes>| {
        value
            .as_ref()
            .map_or_else(|| "null".to_string(), |value| value.to_string())
    };
    let synonyms: Vec<String> = entry
        .synonyms
        .iter()
        .map(|synonym| {
            format!(
                "{}:{}={}",
                source_name(synonym.source),
                synonym.name,
                value(&synonym.value)
            )
        })
        .collect();
    format!(
        "{}={} sensitive={} synonyms={{{}}}",
        entry.name,
        value(&entry.value),
        entry.is_sensitive,
        synonyms.join(", ")
    )
}

/// Kafka's ConfigEntry.ConfigSource names.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// A broker's configs go to that broker (a connection of their own); topic configs to any
/// broker (`None`: the bootstrap connection).
async fn connection_for(
    client: &mut AdminClient,
    kind: EntityType,
    name: &str,
) -> Result<Option<Connection>, AdminError> {
    match kind {
        EntityType::Topics => Ok(None),
        EntityType::Brokers => {
            let id = name.parse::<i32>().map_err(|_| {
                AdminError::Refused(format!(
                    "The entity name for brokers must be a valid integer broker id, but it is: {name}"
                ))
            })?;
            Ok(Some(client.connection_to(id).await?))
        }
    }
}

/// Every config entry of one entity.
async fn describe_one(
    connection: &mut Connection,
    kind: EntityType,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, AdminError> {
    let version = connection.version::<DescribeConfigsRequest>(DESCRIBE_CONFIGS_VERSION_MAX)?;
    let mut request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(kind.resource_type())
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None),
    ]);
    if version >= 1 {
        request = request.with_include_synonyms(true);
    }
    let response: DescribeConfigsResponse = connection.call(version, &request).await?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::Refused(format!("no answer about {name}")))?;
    if let Some(error) = KafkaError::from_code(result.error_code, result.error_message.as_ref()) {
        return Err(error.into());
    }
    Ok(result.configs)
}

async fn alter(
    client: &mut AdminClient,
    entity: &Entity,
    added: &[(String, String)],
    deleted: &[String],
) -> Result<ExitCode, AdminError> {
    let name = entity.name.clone().unwrap_or_default();
    let mut own = connection_for(client, entity.kind, &name).await?;
    let connection = match own.as_mut() {
        Some(connection) => connection,
        None => client.broker(),
    };
    let current: BTreeMap<String, String> = describe_one(connection, entity.kind, &name)
        .await?
        .into_iter()
        .filter(|entry| entry.config_source == entity.kind.dynamic_source())
        .map(|entry| {
            let value = entry.value.map(|v| v.to_string()).unwrap_or_default();
            (entry.name.to_string(), value)
        })
        .collect();
    let missing: Vec<&str> = deleted
        .iter()
        .filter(|key| !current.contains_key(key.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(AdminError::Refused(format!(
            "Invalid config(s): {}",
            missing.join(",")
        )));
    }
    let (code, message) = if connection.supports(ApiKey::IncrementalAlterConfigs) {
        incremental_alter(connection, entity.kind, &name, added, deleted).await?
    } else if connection.supports(ApiKey::AlterConfigs) {
        let mut wanted = current;
        for key in deleted {
            wanted.remove(key);
        }
        wanted.extend(added.iter().cloned());
        replace_all(connection, entity.kind, &name, &wanted).await?
    } else {
        return Err(AdminError::Unsupported {
            address: connection.address().to_string(),
            api: ApiKey::IncrementalAlterConfigs,
        });
    };
    if let Some(error) = KafkaError::from_code(code, message.as_ref()) {
        return Err(error.into());
    }
    println!(
        "Completed updating config for {} {name}.",
        entity.kind.singular()
    );
    Ok(ExitCode::SUCCESS)
}

/// IncrementalAlterConfigs: SET each added, DELETE each deleted. Returns the resource's error.
async fn incremental_alter(
    connection: &mut Connection,
    kind: EntityType,
    name: &str,
    added: &[(String, String)],
    deleted: &[String],
) -> Result<(i16, Option<StrBytes>), AdminError> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = added
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .chain(deleted.iter().map(|key| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_DELETE)
                .with_value(Some(StrBytes::from_static_str("")))
        }))
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(kind.resource_type())
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs),
    ]);
    let (_, response): (i16, IncrementalAlterConfigsResponse) = connection
        .request(INCREMENTAL_ALTER_CONFIGS_VERSION_MAX, &request)
        .await?;
    Ok(response
        .responses
        .into_iter()
        .next()
        .map_or((0, None), |r| (r.error_code, r.error_message)))
}

/// AlterConfigs: the entity's whole set of overrides becomes `wanted`.
async fn replace_all(
    connection: &mut Connection,
    kind: EntityType,
    name: &str,
    wanted: &BTreeMap<String, String>,
) -> Result<(i16, Option<StrBytes>), AdminError> {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = wanted
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(kind.resource_type())
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs),
    ]);
    let (_, response): (i16, AlterConfigsResponse) = connection
        .request(ALTER_CONFIGS_VERSION_MAX, &request)
        .await?;
    Ok(response
        .responses
        .into_iter()
        .next()
        .map_or((0, None), |r| (r.error_code, r.error_message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_lists_split_outside_brackets() {
        let list: ConfigList = "a=1, b=[x,y],c=".parse().expect("valid");
        assert_eq!(
            list.0,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x,y".to_string()),
                ("c".to_string(), String::new()),
            ]
        );
        assert!("a".parse::<ConfigList>().is_err());
        assert!("a=1=2".parse::<ConfigList>().is_err());
        assert!("=1".parse::<ConfigList>().is_err());
    }

    #[test]
    fn entries_read_like_kafka_configs() {
        let entry = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_static_str("min.insync.replicas"))
            .with_value(Some(StrBytes::from_static_str("2")))
            .with_config_source(1);
        assert_eq!(
            entry_line(&entry),
            "min.insync.replicas=2 sensitive=false synonyms={}"
        );
    }
}
