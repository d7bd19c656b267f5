"""Produce and consume against a kchaos broker with kafka-python and aiokafka.

Usage: python_clients.py BOOTSTRAP TOPIC COUNT
Prints one line per check; exits non-zero on any mismatch.
"""
import asyncio
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
assert topic in admin.list_topics(), admin.list_topics()
admin.close()

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                         enable_idempotence=False)
futures = [producer.send(topic, f"py{i}".encode(), partition=0) for i in range(count)]
producer.flush()
offsets = [future.get(timeout=30).offset for future in futures]
assert offsets == list(range(count)), offsets[:10]
producer.close()
print(f"kafka-python produced {count}")

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         consumer_timeout_ms=10000)
partition = TopicPartition(topic, 0)
consumer.assign([partition])
consumer.seek_to_beginning(partition)
values = []
for message in consumer:
    values.append((message.offset, message.value.decode()))
    if len(values) == count:
        break
assert values == [(i, f"py{i}") for i in range(count)], values[:10]
consumer.close()
print(f"kafka-python consumed {count}")


async def with_aiokafka():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"aio", partition=0)
        assert sent.offset == count, sent
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, count)
        message = await asyncio.wait_for(consumer.getone(), 20)
        assert (message.offset, message.value) == (count, b"aio"), message
    finally:
        await consumer.stop()
    print("aiokafka produced and consumed 1")


asyncio.run(with_aiokafka())
