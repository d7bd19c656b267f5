# confluent_kafka worker: to be written
