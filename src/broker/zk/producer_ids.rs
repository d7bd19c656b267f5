//! `/latest_producer_id_block`: the block of producer ids a broker reserved last (Kafka's
//! `ProducerIdManager`), read and compare-and-set written by every broker that hands out ids.

use zookeeper_client as zk;

use super::{KafkaZkClient, PRODUCER_ID_BLOCK_PATH, ZkClientError, request_error};

impl KafkaZkClient {
    /// `/latest_producer_id_block`'s data and znode version, creating it empty (as Kafka's
    /// brokers do at start) when missing.
    pub async fn producer_id_block(&self) -> Result<(Vec<u8>, i32), ZkClientError> {
        let path = PRODUCER_ID_BLOCK_PATH;
        let client = self.client()?;
        match client.get_data(path).await {
            Ok((data, stat)) => return Ok((data, stat.version)),
            Err(zk::Error::NoNode) => {}
            Err(source) => return Err(request_error(path)(source)),
        }
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match client.create(path, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(source) => return Err(request_error(path)(source)),
        }
        let (data, stat) = client.get_data(path).await.map_err(request_error(path))?;
        Ok((data, stat.version))
    }

    /// Writes `/latest_producer_id_block` if it is still at `expected_version`; returns the new
    /// version, or [`ZkClientError::BadVersion`] when another broker wrote it first.
    pub async fn set_producer_id_block(
        &self,
        data: &[u8],
        expected_version: i32,
    ) -> Result<i32, ZkClientError> {
        let path = PRODUCER_ID_BLOCK_PATH;
        match self
            .client()?
            .set_data(path, data, Some(expected_version))
            .await
        {
            Ok(stat) => Ok(stat.version),
            Err(zk::Error::BadVersion) => Err(ZkClientError::BadVersion {
                path: path.to_string(),
                expected_version,
            }),
            Err(source) => Err(request_error(path)(source)),
        }
    }
}
