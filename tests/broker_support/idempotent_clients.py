"""Idempotent producers of kafka-python, confluent-kafka, aiokafka and kcat against a kchaos
broker.

Usage: idempotent_clients.py BOOTSTRAP TOPIC COUNT
Each client sends COUNT records with enable.idempotence on; every record must be acknowledged
at the next offset (kcat says none: its records are checked by the read), and a read of the
partition must find each record once, in order. Prints one line per check; exits non-zero on
any mismatch.
"""
import asyncio
import subprocess
import sys

from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
admin.close()

producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                         linger_ms=5)
futures = [producer.send(topic, f"kp{i}".encode(), partition=0) for i in range(count)]
producer.flush()
offsets = [future.get(timeout=30).offset for future in futures]
assert offsets == list(range(count)), offsets[:10]
producer.close()
print(f"kafka-python idempotent produced {count}")

delivered = []


def on_delivery(error, message):
    assert error is None, error
    delivered.append(message.offset())


producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                     "linger.ms": 5})
for i in range(count):
    producer.produce(topic, f"ck{i}".encode(), partition=0, on_delivery=on_delivery)
    producer.poll(0)
assert producer.flush(30) == 0, "confluent-kafka did not deliver everything"
assert delivered == list(range(count, 2 * count)), delivered[:10]
print(f"confluent-kafka idempotent produced {count}")



async def with_aiokafka():
    from aiokafka import AIOKafkaProducer
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, f"ak{i}".encode(), partition=0)
                   for i in range(count)]
        return [(await future).offset for future in futures]
    finally:
        await producer.stop()


offsets = asyncio.run(with_aiokafka())
assert offsets == list(range(2 * count, 3 * count)), offsets[:10]
print(f"aiokafka idempotent produced {count}")

kcat = subprocess.run(
    ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-X", "enable.idempotence=true",
     "-X", "linger.ms=5"],
    input="".join(f"kc{i}\n" for i in range(count)), text=True, capture_output=True, timeout=60)
assert kcat.returncode == 0, kcat.stderr
print(f"kcat idempotent produced {count}")

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         consumer_timeout_ms=10000)
partition = TopicPartition(topic, 0)
consumer.assign([partition])
consumer.seek_to_beginning(partition)
values = []
for message in consumer:
    values.append((message.offset, message.value.decode()))
    if len(values) == 4 * count:
        break
expected = [f"{prefix}{i}" for prefix in ["kp", "ck", "ak", "kc"] for i in range(count)]
assert values == list(enumerate(expected)), values[:10]
consumer.close()
print(f"read {4 * count} records once each, in order")
