"""A confluent-kafka (librdkafka) consumer in a consumer group, in its own process.

Usage: group_consumer.py BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS
Subscribes to TOPIC as a member of GROUP and prints one line per assignment change,
`assigned 0,3` (partitions, sorted; empty when it holds none), flushing each, then polls until it
is killed. Exits 2 with a message on a consumer error.
"""
import sys

from confluent_kafka import Consumer

bootstrap, group, topic, session_timeout_ms = sys.argv[1:5]
held = set()


def report():
    print("assigned " + ",".join(str(p) for p in sorted(held)), flush=True)


def on_assign(consumer, partitions):
    held.update(p.partition for p in partitions)
    report()


def on_revoke(consumer, partitions):
    held.difference_update(p.partition for p in partitions)
    report()


consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "session.timeout.ms": int(session_timeout_ms),
    "heartbeat.interval.ms": max(100, int(session_timeout_ms) // 5),
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
while True:
    message = consumer.poll(0.1)
    if message is not None and message.error() and message.error().fatal():
        print(f"consumer error: {message.error()}", file=sys.stderr, flush=True)
        sys.exit(2)
