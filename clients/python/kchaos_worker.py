#!/usr/bin/env python3
"""kchaos client worker for confluent-kafka (Python): the worker protocol of
docs/client-protocol.md, version 1, on stdin (requests) and stdout (hello, then replies).

The harness starts one per producer or consumer (`[clients] library = "confluent-kafka-python"`)
and writes this file into the run directory (clients/kchaos_worker.py). It says hello, opens a
confluent_kafka Producer or Consumer with the harness's config (Kafka's names), then answers
requests: sends are pipelined (answered from delivery reports, served by a poll thread); every
other request is answered before the next is read. Logs go to stderr.

confluent-kafka does not expose librdkafka's message persistence status, which the rdkafka
worker uses to call a failed send `fail`. So this worker says `fail` only where the error alone
proves the record was never appended: librdkafka refused to queue it, or the broker refused it
on the only try (`retries = 0`, no idempotence). Everything else that went wrong is `info`.

KCHAOS_TEST_CLIENT_SIGSEGV=PROCESS:REQUESTS[,...] (tests only) makes the worker of that process
kill itself with SIGSEGV right after handling that many requests.
"""

import json
import os
import queue
import signal
import sys
import threading
import time

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException, TopicPartition

PROTOCOL_VERSION = 1
SIGSEGV_ENV = "KCHAOS_TEST_CLIENT_SIGSEGV"

# Broker refusals that leave nothing appended, when they answer the only try.
REFUSED_BEFORE_APPEND = {
    "NOT_ENOUGH_REPLICAS",
    "MSG_SIZE_TOO_LARGE",
    "INVALID_MSG",
    "INVALID_MSG_SIZE",
    "INVALID_RECORD",
    "INVALID_REQUIRED_ACKS",
    "INVALID_TIMESTAMP",
    "RECORD_LIST_TOO_LARGE",
    "TOPIC_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
    "UNKNOWN_TOPIC_OR_PART",
    "INVALID_TOPIC_EXCEPTION",
}

# Commit errors by which the group refused the offsets (certainly not stored).
COMMIT_REFUSED = {
    "ILLEGAL_GENERATION",
    "UNKNOWN_MEMBER_ID",
    "REBALANCE_IN_PROGRESS",
    "FENCED_INSTANCE_ID",
    "OFFSET_METADATA_TOO_LARGE",
    "GROUP_AUTHORIZATION_FAILED",
    "TOPIC_AUTHORIZATION_FAILED",
    "INVALID_COMMIT_OFFSET_SIZE",
    "_NO_OFFSET",
}

# How long fetching the group's committed offsets at an assignment may take.
COMMITTED_TIMEOUT_S = 5

# The worker's own librdkafka settings, under the harness's config.
PRODUCER_DEFAULTS = {
    "queue.buffering.max.messages": "100000",
    "topic.metadata.refresh.interval.ms": "1000",
    "log_level": "3",
}
CONSUMER_DEFAULTS = {
    "enable.auto.offset.store": "false",
    "enable.partition.eof": "false",
    "topic.metadata.refresh.interval.ms": "1000",
    "log_level": "3",
}


def log(message):
    print(f"kchaos_worker: {message}", file=sys.stderr, flush=True)


class Output:
    """The one writer of stdout: a thread that batches queued lines before flushing."""

    def __init__(self):
        self.lines = queue.Queue(maxsize=65536)
        self.thread = threading.Thread(target=self._write, name="stdout", daemon=True)
        self.thread.start()

    def send(self, message):
        self.lines.put(json.dumps(message, separators=(",", ":")) + "\n")

    def reply(self, request_id, outcome="ok", **fields):
        message = {"id": request_id, "type": outcome}
        message.update({key: value for key, value in fields.items() if value is not None})
        self.send(message)

    def finish(self):
        self.lines.put(None)
        self.thread.join()

    def _write(self):
        out = sys.stdout
        try:
            while True:
                line = self.lines.get()
                while line is not None:
                    out.write(line)
                    try:
                        line = self.lines.get_nowait()
                    except queue.Empty:
                        break
                out.flush()
                if line is None:
                    return
        except (BrokenPipeError, OSError) as error:
            log(f"stdout broke ({error}): the harness is gone")
            os._exit(3)


def librdkafka_config(defaults, config):
    """Kafka's (Java client's) names, which librdkafka shares but for a few."""
    merged = dict(defaults)
    for key, value in config.items():
        if key == "fetch.max.wait.ms":
            key = "fetch.wait.max.ms"
        if key == "auto.offset.reset" and value == "none":
            value = "error"
        merged[key] = value
    return merged


def error_name(error):
    """librdkafka's own name: NOT_ENOUGH_REPLICAS, _MSG_TIMED_OUT."""
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError):
        return error.name()
    return str(error)


class ProducerClient:
    def __init__(self, config, output):
        self.output = output
        self.retries_once = config.get("retries") == "0" and config.get(
            "enable.idempotence", "false"
        ) != "true"
        self.producer = confluent_kafka.Producer(librdkafka_config(PRODUCER_DEFAULTS, config))
        self.in_flight = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.poller = threading.Thread(target=self._poll, name="poll", daemon=True)
        self.poller.start()

    def _poll(self):
        while not self.stopping.is_set():
            self.producer.poll(0.05)

    def send(self, request_id, request):
        def delivered(error, message):
            with self.lock:
                self.in_flight -= 1
            if error is None:
                self.output.reply(
                    request_id, partition=message.partition(), offset=message.offset()
                )
                return
            name = error_name(error)
            partition = message.partition() if message.partition() >= 0 else None
            outcome = "fail" if self.retries_once and name in REFUSED_BEFORE_APPEND else "info"
            self.output.reply(request_id, outcome, error=name, partition=partition)

        arguments = {"value": request["value"].encode(), "on_delivery": delivered}
        if request.get("key") is not None:
            arguments["key"] = request["key"].encode()
        if request.get("partition") is not None:
            arguments["partition"] = request["partition"]
        with self.lock:
            self.in_flight += 1
        try:
            self.producer.produce(request["topic"], **arguments)
        except (BufferError, KafkaException) as error:
            # Never queued: certainly not appended.
            with self.lock:
                self.in_flight -= 1
            self.output.reply(request_id, "fail", error=error_name(error))

    def close(self, timeout_s):
        remaining = self.producer.flush(timeout_s)
        if remaining > 0:
            self.producer.purge(in_queue=True, in_flight=True)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                with self.lock:
                    if self.in_flight <= 0:
                        break
                time.sleep(0.005)
        self.stopping.set()
        self.poller.join()


class ConsumerClient:
    """A confluent_kafka Consumer. As a group member (`subscribe`) it carries out rebalances in
    librdkafka's callbacks: revoked partitions are unassigned (by confluent-kafka after the
    callback); given ones are assigned at the group's committed offsets, fetched after the
    assignment came (the log start where none is committed), so that it reads from exactly the
    offsets it reports. A poll stops at a rebalance; a record the same library call returned
    after the rebalance waits for the next poll, so that every reply's records come before its
    rebalances."""

    def __init__(self, config):
        self.consumer = confluent_kafka.Consumer(librdkafka_config(CONSUMER_DEFAULTS, config))
        self.rebalances = []
        self.carried = []

    def assign(self, request):
        topic = request["topic"]
        partitions = [TopicPartition(topic, p, o) for p, o in request["positions"]]
        self.consumer.assign(partitions)
        self.carried = []
        return {}

    def subscribe(self, request):
        def on_assign(consumer, partitions):
            numbers = sorted(tp.partition for tp in partitions)
            try:
                fetched = consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S)
                failed = [tp.error for tp in fetched if tp.error is not None]
                if failed:
                    raise KafkaException(failed[0])
            except KafkaException as error:
                # librdkafka's own lookup of the committed offsets decides.
                consumer.assign(partitions)
                self.rebalances.append({"assigned": numbers, "committed_error": error_name(error)})
                return
            committed = sorted([tp.partition, tp.offset] for tp in fetched if tp.offset >= 0)
            starts = [
                TopicPartition(
                    tp.topic,
                    tp.partition,
                    tp.offset if tp.offset >= 0 else confluent_kafka.OFFSET_BEGINNING,
                )
                for tp in fetched
            ]
            consumer.assign(starts)
            self.rebalances.append({"assigned": numbers, "committed": committed})

        def on_revoke(consumer, partitions):
            self.rebalances.append({"revoked": sorted(tp.partition for tp in partitions)})

        self.consumer.subscribe(request["topics"], on_assign=on_assign, on_revoke=on_revoke)
        return {}

    def poll(self, request):
        records, self.carried = self.carried, []
        trouble = None
        window_end = time.monotonic() + request["timeout_ms"] / 1000
        while len(records) < request["max_records"] and not self.rebalances:
            left = window_end - time.monotonic()
            if left <= 0:
                break
            message = self.consumer.poll(left)
            if message is None:
                break
            if message.error() is not None:
                trouble = message.error()
                break
            record = [message.partition(), message.offset(), text(message.value())]
            if self.rebalances:
                # Read after the rebalance the same call served: it belongs to the next poll.
                self.carried.append(record)
                break
            records.append(record)
        reply = {"records": records}
        if trouble is not None:
            name = error_name(trouble)
            reply["error"] = name
            if "OFFSET_OUT_OF_RANGE" in name or "AUTO_OFFSET_RESET" in name:
                reply["position_lost"] = True
        if self.rebalances:
            rebalances, self.rebalances = self.rebalances, []
            reply["rebalances"] = rebalances
            assigned = [p for r in rebalances for p in r.get("assigned", [])]
            revoked = [p for r in rebalances for p in r.get("revoked", [])]
            if assigned:
                reply["assigned"] = assigned
            if revoked:
                reply["revoked"] = revoked
        return reply

    def commit(self, request):
        if request.get("offsets") is None:
            self.consumer.commit(asynchronous=False)
        else:
            offsets = [TopicPartition(request["topic"], p, o) for p, o in request["offsets"]]
            self.consumer.commit(offsets=offsets, asynchronous=False)
        return {}

    def watermarks(self, request):
        low, high = self.consumer.get_watermark_offsets(
            TopicPartition(request["topic"], request["partition"]),
            timeout=request["timeout_ms"] / 1000,
        )
        return {"log_start_offset": low, "high_watermark": high}

    def final_read(self, request):
        topic, partition = request["topic"], request["partition"]
        deadline = time.monotonic() + request["timeout_ms"] / 1000
        reply = {"log_start_offset": -1, "high_watermark": -1, "complete": False, "records": []}
        while time.monotonic() < deadline:
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=1
                )
            except KafkaException as error:
                log(f"final read watermarks of {topic}-{partition}: {error}")
                time.sleep(0.1)
                continue
            reply["log_start_offset"], reply["high_watermark"] = low, high
            records = []
            problem = self._read_range(topic, partition, low, high, deadline, records)
            reply["records"] = records
            if problem is None:
                reply["complete"] = True
                break
            log(f"final read of {topic}-{partition}: {problem}; again")
        return reply

    def _read_range(self, topic, partition, low, high, deadline, records):
        if high <= low:
            return None
        self.consumer.assign([TopicPartition(topic, partition, low)])
        next_offset = low
        while next_offset < high:
            if time.monotonic() >= deadline:
                return f"deadline passed at offset {next_offset} of {high}"
            message = self.consumer.poll(1)
            if message is None:
                continue
            if message.error() is not None:
                return error_name(message.error())
            if message.partition() != partition or message.offset() < next_offset:
                continue
            if message.offset() >= high:
                break
            records.append([partition, message.offset(), text(message.value())])
            next_offset = message.offset() + 1
        return None

    def close(self):
        self.consumer.close()


def text(value):
    return "" if value is None else value.decode("utf-8", errors="replace")


def crash_plan():
    plan = set()
    for part in os.environ.get(SIGSEGV_ENV, "").split(","):
        if part.strip():
            process, requests = part.strip().split(":")
            plan.add((int(process), int(requests)))
    return plan


CONSUMER_OPS = {
    "assign": ConsumerClient.assign,
    "subscribe": ConsumerClient.subscribe,
    "poll": ConsumerClient.poll,
    "commit": ConsumerClient.commit,
    "watermarks": ConsumerClient.watermarks,
    "final-read": ConsumerClient.final_read,
}


def main():
    plan = crash_plan()
    output = Output()
    output.send(
        {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "library": "confluent-kafka-python",
            "library_version": "%s (librdkafka %s)"
            % (confluent_kafka.__version__, confluent_kafka.libversion()[0]),
            "worker": "kchaos_worker.py",
        }
    )
    client = None
    process = 0
    handled = 0
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            request_id = request["id"]
            op = request["op"]
        except (ValueError, KeyError, TypeError) as error:
            log(f"a line that is not a request: {error}: {line[:200]!r}")
            output.finish()
            sys.exit(2)
        try:
            if op == "open":
                if client is not None:
                    output.reply(request_id, "fail", error="bad request: already open")
                    continue
                config = request["config"]
                if request["role"] == "producer":
                    client = ProducerClient(config, output)
                else:
                    client = ConsumerClient(config)
                process = request["process"]
                log(f"client {process}: {request['role']} open")
                output.reply(request_id)
            elif op == "close":
                if isinstance(client, ProducerClient):
                    client.close(request["timeout_ms"] / 1000)
                elif isinstance(client, ConsumerClient):
                    client.close()
                output.reply(request_id)
                break
            elif client is None:
                output.reply(request_id, "fail", error="bad request: the first request must be open")
            elif op == "send" and isinstance(client, ProducerClient):
                client.send(request_id, request)
            elif op in CONSUMER_OPS and isinstance(client, ConsumerClient):
                output.reply(request_id, **CONSUMER_OPS[op](client, request))
            else:
                output.reply(request_id, "fail", error=f"bad request: cannot {op} here")
        except KafkaException as error:
            # A consumer call that raised: the library refused it, nothing happened; but a
            # commit that went wrong may still have been stored, unless the group refused it.
            name = error_name(error)
            unknown = op == "commit" and name not in COMMIT_REFUSED
            output.reply(request_id, "info" if unknown else "fail", error=name)
        except (KeyError, TypeError, ValueError) as error:
            output.reply(request_id, "fail", error=f"bad request: {error!r}")
        handled += 1
        if (process, handled) in plan:
            log(f"client {process}: {SIGSEGV_ENV}: SIGSEGV after {handled} requests")
            signal.signal(signal.SIGSEGV, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGSEGV)
    output.finish()


if __name__ == "__main__":
    main()
