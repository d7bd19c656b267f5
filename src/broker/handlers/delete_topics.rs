//! DeleteTopics: delete each named topic from the coordinator and this broker's disks.

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Outcome;
use crate::broker::context::Broker;
use crate::broker::topic_admin;

pub fn handle(
    broker: &Arc<Broker>,
    request: DeleteTopicsRequest,
    version: i16,
) -> Outcome<DeleteTopicsResponse> {
    let broker = Arc::clone(broker);
    // v0-5 name topics in `topic_names`, v6 in `topics`.
    let names: Vec<TopicName> = request
        .topic_names
        .into_iter()
        .chain(request.topics.into_iter().filter_map(|state| state.name))
        .collect();
    Outcome::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let result = DeletableTopicResult::default().with_name(Some(name.clone()));
            results.push(match topic_admin::delete_topic(&broker, &name.0).await {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error.response_error().code())
                    .with_error_message(
                        (version >= 5).then(|| StrBytes::from_string(error.to_string())),
                    ),
            });
        }
        DeleteTopicsResponse::default().with_responses(results)
    }))
}
