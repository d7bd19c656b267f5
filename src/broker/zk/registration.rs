//! Broker registration: the ephemeral `/brokers/ids/<id>` owned by this broker's session, the
//! owner of an ephemeral node, the live brokers, and the brokers back from an unclean shutdown
//! (`/brokers/unclean_shutdowns/<id>`, KIP-966).

use std::collections::BTreeMap;

use zookeeper_client as zk;

use super::{
    BROKER_IDS_PATH, BrokerRegistration, KafkaZkClient, UNCLEAN_SHUTDOWNS_PATH, ZkClientError,
    broker_path, from_json, request_error, to_json,
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

    /// Announces that this broker comes back from an unclean shutdown (before it registers):
    /// the controller takes it out of every ISR and ELR it may no longer deserve, then
    /// deletes the announcement ([`Coordinator::clear_unclean_shutdown`]).
    pub async fn announce_unclean_shutdown(&self, broker_id: i32) -> Result<(), ZkClientError> {
        self.ensure_path(UNCLEAN_SHUTDOWNS_PATH).await?;
        let path = format!("{UNCLEAN_SHUTDOWNS_PATH}/{broker_id}");
        let data = to_json(&serde_json::json!({"version": 1, "broker": broker_id}));
        self.create_or_set(&path, &data).await
    }

    /// The brokers whose unclean shutdown the controller has not handled yet.
    pub async fn unclean_shutdowns(&self) -> Result<Vec<i32>, ZkClientError> {
        match self.client()?.list_children(UNCLEAN_SHUTDOWNS_PATH).await {
            Ok(children) => Ok(children.iter().filter_map(|c| c.parse().ok()).collect()),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(source) => Err(request_error(UNCLEAN_SHUTDOWNS_PATH)(source)),
        }
    }

    /// The controller has handled `broker_id`'s unclean shutdown.
    pub async fn clear_unclean_shutdown(&self, broker_id: i32) -> Result<(), ZkClientError> {
        let path = format!("{UNCLEAN_SHUTDOWNS_PATH}/{broker_id}");
        match self.client()?.delete(&path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(source) => Err(request_error(&path)(source)),
        }
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
