"""A confluent-kafka, kafka-python or aiokafka consumer in a consumer group, in its own process.

Usage: python_group_member.py CLIENT BOOTSTRAP GROUP TOPIC SESSION_TIMEOUT_MS
CLIENT is `confluent-kafka` (librdkafka's default assignors, range and round-robin),
`kafka-python` or `aiokafka` (round-robin, which every client offers). Subscribes to TOPIC as a
member of GROUP and prints one line per assignment change, `assigned 0,3` (partitions, sorted;
empty when it holds none), flushing each, then polls until it is killed. On SIGTERM it leaves
the group cleanly (LeaveGroup), prints `closed` and exits 0; on a fatal consumer error it exits 2.
"""
import asyncio
import signal
import sys

client, bootstrap, group, topic, session_timeout_ms = sys.argv[1:6]
session_timeout_ms = int(session_timeout_ms)
heartbeat_interval_ms = max(100, session_timeout_ms // 5)
held = set()
stopping = False


def report():
    print("assigned " + ",".join(str(p) for p in sorted(held)), flush=True)


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)


def with_confluent_kafka():
    from confluent_kafka import Consumer

    def on_assign(consumer, partitions):
        held.update(p.partition for p in partitions)
        report()

    def on_revoke(consumer, partitions):
        held.difference_update(p.partition for p in partitions)
        report()

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group,
        "session.timeout.ms": session_timeout_ms, "heartbeat.interval.ms": heartbeat_interval_ms,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stopping:
        message = consumer.poll(0.1)
        if message is not None and message.error() and message.error().fatal():
            print(f"consumer error: {message.error()}", file=sys.stderr, flush=True)
            sys.exit(2)
    consumer.close()


def with_kafka_python():
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            held.difference_update(p.partition for p in revoked)
            report()

        def on_partitions_assigned(self, assigned):
            held.update(p.partition for p in assigned)
            report()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group,
        session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
        auto_offset_reset="earliest", enable_auto_commit=False,
        partition_assignment_strategy=[RoundRobinPartitionAssignor])
    consumer.subscribe([topic], listener=Listener())
    while not stopping:
        consumer.poll(timeout_ms=100)
    consumer.close()


async def with_aiokafka():
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            held.difference_update(p.partition for p in revoked)
            report()

        async def on_partitions_assigned(self, assigned):
            held.update(p.partition for p in assigned)
            report()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group,
        session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
        auto_offset_reset="earliest", enable_auto_commit=False,
        partition_assignment_strategy=[RoundRobinPartitionAssignor])
    consumer.subscribe([topic], listener=Listener())
    await consumer.start()
    while not stopping:
        await consumer.getmany(timeout_ms=100)
    await consumer.stop()


if client == "confluent-kafka":
    with_confluent_kafka()
elif client == "kafka-python":
    with_kafka_python()
elif client == "aiokafka":
    asyncio.run(with_aiokafka())
else:
    print(f"unknown client {client}", file=sys.stderr)
    sys.exit(2)
print("closed", flush=True)
