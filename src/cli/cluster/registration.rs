//! Which brokers of this cluster are registered, read from the coordinator as Kafka keeps them:
//! `/brokers/ids/<id>` (ephemeral) and `/controller`. A registration counts only if it was
//! created after this `cluster up` last started that broker: a node left by an earlier process
//! (its session not yet expired, e.g. after a restart on the same `--dir`) is not a running
//! broker.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zookeeper_client as zk;

/// How long one look at the coordinator may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The session of our own client (it only reads).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Milliseconds since the epoch, as the coordinator's `ctime`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// What the coordinator says, judged against when each broker was started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrations {
    /// Broker ids whose registration this cluster's process created.
    pub fresh: Vec<i32>,
    /// Broker ids registered by an earlier process (created before the broker was started).
    pub leftover: Vec<i32>,
    /// The controller, if its `/controller` node is fresh too.
    pub controller: Option<i32>,
}

/// A reading client of the coordinator, reconnected after a failure.
pub struct Registry {
    address: String,
    client: Option<zk::Client>,
}

impl Registry {
    pub fn new(address: &str) -> Self {
        Registry {
            address: address.to_string(),
            client: None,
        }
    }

    /// Reads the registrations; `started_ms` is when each broker id was last started (a broker
    /// not in it is not running). An error names what could not be read.
    pub async fn read(&mut self, started_ms: &BTreeMap<i32, i64>) -> Result<Registrations, String> {
        let outcome = tokio::time::timeout(QUERY_TIMEOUT, self.read_once(started_ms)).await;
        match outcome {
            Ok(Ok(registrations)) => Ok(registrations),
            Ok(Err(error)) => {
                self.disconnect().await;
                Err(error)
            }
            Err(_) => {
                self.disconnect().await;
                Err(format!(
                    "the coordinator at {} did not answer within {} ms",
                    self.address,
                    QUERY_TIMEOUT.as_millis()
                ))
            }
        }
    }

    async fn read_once(
        &mut self,
        started_ms: &BTreeMap<i32, i64>,
    ) -> Result<Registrations, String> {
        if self.client.is_none() {
            let client = zk::Client::connector()
                .with_session_timeout(SESSION_TIMEOUT)
                .with_connection_timeout(QUERY_TIMEOUT)
                .with_fail_eagerly()
                .connect(&self.address)
                .await
                .map_err(|error| {
                    format!("connecting to the coordinator {}: {error}", self.address)
                })?;
            self.client = Some(client);
        }
        let Some(client) = self.client.as_ref() else {
            return Err("no coordinator client".to_string());
        };
        let reading = |error: zk::Error, path: &str| format!("reading {path}: {error}");
        let ids = match client.list_children("/brokers/ids").await {
            Ok(ids) => ids,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(error) => return Err(reading(error, "/brokers/ids")),
        };
        let mut registrations = Registrations::default();
        for id in ids {
            let Ok(broker_id) = id.parse::<i32>() else {
                continue;
            };
            let path = format!("/brokers/ids/{id}");
            let created_ms = match client.check_stat(&path).await {
                Ok(Some(stat)) => stat.ctime,
                Ok(None) => continue,
                Err(error) => return Err(reading(error, &path)),
            };
            if is_fresh(started_ms.get(&broker_id), created_ms) {
                registrations.fresh.push(broker_id);
            } else {
                registrations.leftover.push(broker_id);
            }
        }
        registrations.controller = match client.get_data("/controller").await {
            Ok((data, stat)) => {
                controller_id(&data).filter(|id| is_fresh(started_ms.get(id), stat.ctime))
            }
            Err(zk::Error::NoNode) => None,
            Err(error) => return Err(reading(error, "/controller")),
        };
        Ok(registrations)
    }

    /// Closes the session, if any (its next read connects anew).
    pub async fn disconnect(&mut self) {
        if let Some(client) = self.client.take() {
            crate::coordinator::shell::close(client).await;
        }
    }
}

/// Whether a node created at `created_ms` belongs to a broker process started at `started_ms`
/// (or later): the process registers after it starts. `None`: the broker is not running.
fn is_fresh(started_ms: Option<&i64>, created_ms: i64) -> bool {
    started_ms.is_some_and(|started| created_ms >= *started)
}

/// `brokerid` of `/controller`'s JSON (`{"version":1,"brokerid":2,"timestamp":"..."}`).
fn controller_id(data: &[u8]) -> Option<i32> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    i32::try_from(value.get("brokerid")?.as_i64()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_older_than_its_process_is_a_leftover() {
        assert!(is_fresh(Some(&1_000), 1_000));
        assert!(is_fresh(Some(&1_000), 1_500));
        assert!(
            !is_fresh(Some(&1_000), 999),
            "created before the broker started"
        );
        assert!(!is_fresh(None, 1_500), "the broker is not running");
    }

    #[test]
    fn controller_id_reads_kafka_json() {
        assert_eq!(
            controller_id(br#"{"version":1,"brokerid":2,"timestamp":"1704544728806"}"#),
            Some(2)
        );
        assert_eq!(controller_id(b"garbage"), None);
    }
}
