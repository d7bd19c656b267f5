"""confluent-kafka's Python Consumer reading one partition, several ways (kchaos bench consume).

Usage: consume_python.py BOOTSTRAP TOPIC RECORDS
Each scenario uses a fresh Consumer with group.id set and assign() (no subscription) and
prints one line: `<total records/s> <records/s after the first record> <s to the first
record> <fetch responses> <fetch backoffs> <scenario>`, the last two counted from librdkafka's
`fetch` debug lines (one per response and one per pause of `fetch.queue.backoff.ms`). Exits 2
with a message if a scenario does not read RECORDS records.
"""
import logging
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

bootstrap, topic, records = sys.argv[1], sys.argv[2], int(sys.argv[3])


class FetchCounter(logging.Handler):
    """Counts librdkafka's fetch responses and queue-full backoffs from its debug lines."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.fetches = 0
        self.backoffs = 0

    def emit(self, record):
        message = record.getMessage()
        if "fetch queue (qlen" in message:
            self.fetches += 1
        elif "Fetch backoff" in message and "Local: Queue full" in message:
            self.backoffs += 1


def read(extra, offset, prefetch_s=0.0):
    counter = FetchCounter()
    logger = logging.getLogger(f"librdkafka-{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    conf = {"bootstrap.servers": bootstrap, "group.id": "kchaos-bench-consume",
            "debug": "fetch"}
    conf.update(extra)
    consumer = Consumer(conf, logger=logger)
    got, first = 0, None
    start = time.perf_counter()
    consumer.assign([TopicPartition(topic, 0, offset)])
    if prefetch_s:
        # Let librdkafka fetch everything before timing the application's reads.
        while consumer.poll(1.0) is None:
            pass
        got = 1
        time.sleep(prefetch_s)
        start = first = time.perf_counter()
    deadline = time.monotonic() + 120
    while got < records and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        if first is None:
            first = time.perf_counter()
        got += 1
    end = time.perf_counter()
    consumer.close()
    if got < records:
        print(f"read only {got} of {records} records in 120 s", file=sys.stderr)
        sys.exit(2)
    return (records / (end - start), (records - 1) / max(end - first, 1e-9), first - start,
            counter.fetches, counter.backoffs)


scenarios = [
    ("assign(BEGINNING), client defaults (issue 15's setup)", {}, OFFSET_BEGINNING, 0),
    ("assign(offset 0), client defaults", {}, 0, 0),
    ("assign(offset 0), fetch.queue.backoff.ms=10", {"fetch.queue.backoff.ms": 10}, 0, 0),
    ("assign(BEGINNING), fetch.queue.backoff.ms=10", {"fetch.queue.backoff.ms": 10},
     OFFSET_BEGINNING, 0),
    ("the application's own pace: all records fetched before timing",
     {"queued.min.messages": 10_000_000, "queued.max.messages.kbytes": 2_000_000}, 0, 2.0),
]
for name, extra, offset, prefetch_s in scenarios:
    total, after_first, to_first, fetches, backoffs = read(extra, offset, prefetch_s)
    print(f"{total:.0f} {after_first:.0f} {to_first:.3f} {fetches} {backoffs} {name}",
          flush=True)
