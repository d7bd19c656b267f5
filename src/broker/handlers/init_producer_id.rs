//! InitProducerId: a producer id and epoch for an idempotent producer (v0-5; the versions differ
//! only for transactions). As Kafka's `TransactionCoordinator.handleInitProducerId` does for a
//! request without a transactional id, any broker answers with a new id from its reserved block
//! and epoch 0 — also when the request (v3+, KIP-360) carries the producer's current id and
//! epoch: Kafka bumps epochs only for transactional ids, an idempotent producer bumps its own.
//! A transactional id gets INVALID_REQUEST (an empty one too, as in Kafka): this broker does not
//! support transactions and says so in its log. Without the coordinator (unreachable within
//! `zookeeper.session.timeout.ms`): COORDINATOR_NOT_AVAILABLE, which clients retry.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::producer_ids::ProducerIdError;

pub fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    _version: i16,
) -> Outcome<InitProducerIdResponse> {
    match request.transactional_id {
        None => {}
        Some(id) if id.is_empty() => {
            tracing::info!("InitProducerId with an empty transactional.id: INVALID_REQUEST");
            return Outcome::Now(error(ResponseError::InvalidRequest));
        }
        Some(id) => {
            tracing::warn!(
                "InitProducerId for transactional.id `{}` refused with INVALID_REQUEST: \
                 transactions are not supported by this broker (idempotent producers without a \
                 transactional.id are)",
                id.as_str()
            );
            return Outcome::Now(error(ResponseError::InvalidRequest));
        }
    }
    let broker = Arc::clone(broker);
    Outcome::Later(Box::pin(async move {
        let timeout = Duration::from_millis(broker.config.zookeeper_session_timeout_ms);
        let generated =
            tokio::time::timeout(timeout, broker.producer_ids.generate(&broker.coordinator)).await;
        match generated {
            Ok(Ok(producer_id)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(0),
            Ok(Err(failure)) => {
                tracing::warn!("cannot give a producer id: {failure}");
                error(match failure {
                    ProducerIdError::Coordinator(_) | ProducerIdError::Contention { .. } => {
                        ResponseError::CoordinatorNotAvailable
                    }
                    ProducerIdError::BadBlock { .. } | ProducerIdError::Exhausted { .. } => {
                        ResponseError::UnknownServerError
                    }
                })
            }
            Err(_) => {
                tracing::warn!(
                    "cannot give a producer id: the coordinator did not answer within {} ms",
                    timeout.as_millis()
                );
                error(ResponseError::CoordinatorNotAvailable)
            }
        }
    }))
}

fn error(error: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(error.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
