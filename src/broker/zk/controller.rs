//! The controller's znodes: `/controller` (the ephemeral election), `/controller_epoch`
//! (compare-and-set), and the controller's fenced write of a partition state.

use zookeeper_client as zk;

use super::{
    CONTROLLER_EPOCH_PATH, CONTROLLER_PATH, ControllerJson, KafkaZkClient, PartitionStateJson,
    ZkClientError, from_json, partition_state_path, request_error, to_json,
};

impl KafkaZkClient {
    /// The controller's write of a partition state: one multi-op that checks
    /// `/controller_epoch` is still at `controller_epoch_version` (fencing a stale controller)
    /// and sets the state if its znode is at `expected_version`. Returns the new version.
    pub async fn controller_write_partition_state(
        &self,
        topic: &str,
        partition: i32,
        state: &PartitionStateJson,
        expected_version: i32,
        controller_epoch_version: i32,
    ) -> Result<i32, ZkClientError> {
        let path = partition_state_path(topic, partition);
        let client = self.client()?;
        let mut writer = client.new_multi_writer();
        writer
            .add_check_version(CONTROLLER_EPOCH_PATH, controller_epoch_version)
            .map_err(request_error(CONTROLLER_EPOCH_PATH))?;
        writer
            .add_set_data(&path, &to_json(state), Some(expected_version))
            .map_err(request_error(&path))?;
        match writer.commit().await {
            Ok(results) => match results.get(1) {
                Some(zk::MultiWriteResult::SetData { stat }) => Ok(stat.version),
                _ => Ok(expected_version + 1),
            },
            Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                Err(ZkClientError::ControllerMoved)
            }
            Err(zk::MultiWriteError::OperationFailed { .. }) => Err(ZkClientError::BadVersion {
                path,
                expected_version,
            }),
            Err(zk::MultiWriteError::RequestFailed { source }) => Err(request_error(&path)(source)),
        }
    }

    /// `/controller_epoch`: (epoch, znode version); `None` before the first controller.
    pub async fn controller_epoch(&self) -> Result<Option<(i32, i32)>, ZkClientError> {
        match self.client()?.get_data(CONTROLLER_EPOCH_PATH).await {
            Ok((data, stat)) => {
                let text = String::from_utf8_lossy(&data);
                let epoch = text.trim().parse().map_err(|_| ZkClientError::BadData {
                    path: CONTROLLER_EPOCH_PATH.to_string(),
                    reason: format!("`{text}` is not a number"),
                })?;
                Ok(Some((epoch, stat.version)))
            }
            Err(zk::Error::NoNode) => Ok(None),
            Err(source) => Err(request_error(CONTROLLER_EPOCH_PATH)(source)),
        }
    }

    /// Increments `/controller_epoch` by compare-and-set (creating it at 1). Returns the new
    /// (epoch, znode version).
    pub async fn increment_controller_epoch(&self) -> Result<(i32, i32), ZkClientError> {
        for _ in 0..100 {
            match self.controller_epoch().await? {
                None => {
                    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                    match self
                        .client()?
                        .create(CONTROLLER_EPOCH_PATH, b"1", &options)
                        .await
                    {
                        Ok((stat, _)) => return Ok((1, stat.version)),
                        Err(zk::Error::NodeExists) => continue,
                        Err(source) => return Err(request_error(CONTROLLER_EPOCH_PATH)(source)),
                    }
                }
                Some((epoch, version)) => {
                    let next = epoch + 1;
                    match self
                        .client()?
                        .set_data(
                            CONTROLLER_EPOCH_PATH,
                            next.to_string().as_bytes(),
                            Some(version),
                        )
                        .await
                    {
                        Ok(stat) => return Ok((next, stat.version)),
                        Err(zk::Error::BadVersion) => continue,
                        Err(source) => return Err(request_error(CONTROLLER_EPOCH_PATH)(source)),
                    }
                }
            }
        }
        Err(ZkClientError::BadVersion {
            path: CONTROLLER_EPOCH_PATH.to_string(),
            expected_version: -1,
        })
    }

    /// Tries to become the controller: creates the ephemeral `/controller`. `true` when it is
    /// this session's (created now, or earlier in this session), `false` if another session
    /// holds it.
    pub async fn try_create_controller(&self, broker_id: i32) -> Result<bool, ZkClientError> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis());
        let json = ControllerJson {
            version: 1,
            brokerid: broker_id,
            timestamp: timestamp.to_string(),
        };
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        let client = self.client()?;
        match client
            .create(CONTROLLER_PATH, &to_json(&json), &options)
            .await
        {
            Ok(_) => Ok(true),
            Err(zk::Error::NodeExists) => Ok(self.controller_is_ours().await?),
            Err(source) => Err(request_error(CONTROLLER_PATH)(source)),
        }
    }

    /// Whether `/controller` is this session's ephemeral node.
    pub async fn controller_is_ours(&self) -> Result<bool, ZkClientError> {
        let session = self.session_id();
        Ok(session != 0 && self.ephemeral_owner(CONTROLLER_PATH).await? == Some(session))
    }

    /// The current controller's broker id, if there is one.
    pub async fn controller_id(&self) -> Result<Option<i32>, ZkClientError> {
        match self.client()?.get_data(CONTROLLER_PATH).await {
            Ok((data, _)) => Ok(Some(
                from_json::<ControllerJson>(CONTROLLER_PATH, &data)?.brokerid,
            )),
            Err(zk::Error::NoNode) => Ok(None),
            Err(source) => Err(request_error(CONTROLLER_PATH)(source)),
        }
    }
}
