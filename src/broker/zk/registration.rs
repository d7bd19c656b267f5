//! Broker registration: the ephemeral `/brokers/ids/<id>` owned by this broker's session, the
//! owner of an ephemeral node, and the live brokers.

use std::collections::BTreeMap;

use zookeeper_client as zk;

use super::{
    BROKER_IDS_PATH, BrokerRegistration, KafkaZkClient, ZkClientError, broker_path, from_json,
    request_error, to_json,
};

impl KafkaZkClient {
    /// Creates the ephemeral `/brokers/ids/<id>`. Already there and owned by this session
    /// (a create whose answer a lost connection swallowed) counts as registered.
    pub async fn register_broker(
        &self,
        broker_id: i32,
        registration: &BrokerRegistration,
    ) -> Result<(), ZkClientError> {
        self.ensure_path(BROKER_IDS_PATH).await?;
        let path = broker_path(broker_id);
        let data = to_json(registration);
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let client = self.client()?;
        let session = client.session_id().0;
        match client.create(&path, &data, &options).await {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => {
                if self.ephemeral_owner(&path).await? != Some(session) {
                    return Err(ZkClientError::BrokerIdTaken(broker_id));
                }
            }
            Err(source) => return Err(request_error(&path)(source)),
        }
        self.registered_session.send_replace(session);
        Ok(())
    }

    /// The session owning the ephemeral node at `path`; `None` if there is no such node (or
    /// it is persistent).
    pub async fn ephemeral_owner(&self, path: &str) -> Result<Option<i64>, ZkClientError> {
        match self.client()?.check_stat(path).await {
            Ok(Some(stat)) if stat.ephemeral_owner != 0 => Ok(Some(stat.ephemeral_owner)),
            Ok(_) => Ok(None),
            Err(source) => Err(request_error(path)(source)),
        }
    }

    /// Removes `/brokers/ids/<id>` (controlled shutdown: the controller moves leadership).
    pub async fn deregister_broker(&self, broker_id: i32) -> Result<(), ZkClientError> {
        let path = broker_path(broker_id);
        match self.client()?.delete(&path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(source) => Err(request_error(&path)(source)),
        }
    }

    /// The registered (live) brokers.
    pub async fn live_brokers(&self) -> Result<BTreeMap<i32, BrokerRegistration>, ZkClientError> {
        let children = match self.client()?.list_children(BROKER_IDS_PATH).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return Ok(BTreeMap::new()),
            Err(source) => return Err(request_error(BROKER_IDS_PATH)(source)),
        };
        let mut brokers = BTreeMap::new();
        for child in children {
            let Ok(broker_id) = child.parse::<i32>() else {
                continue;
            };
            let path = broker_path(broker_id);
            match self.client()?.get_data(&path).await {
                Ok((data, _)) => {
                    brokers.insert(broker_id, from_json(&path, &data)?);
                }
                Err(zk::Error::NoNode) => continue,
                Err(source) => return Err(request_error(&path)(source)),
            }
        }
        Ok(brokers)
    }

    /// The ids of the registered (live) brokers.
    pub async fn live_broker_ids(&self) -> Result<Vec<i32>, ZkClientError> {
        match self.client()?.list_children(BROKER_IDS_PATH).await {
            Ok(children) => Ok(children.iter().filter_map(|c| c.parse().ok()).collect()),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(source) => Err(request_error(BROKER_IDS_PATH)(source)),
        }
    }
}
