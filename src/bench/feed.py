"""Benchmark feeds: simulated events at JVM speed (Spark's Kafka sink) or paced (kafka-python).

Python simulation plus kafka-python tops out at a few thousand events/s on two cores, too
slow to preload millions of events or to sustain 10,000 events/s next to Spark. So a pool
of simulated events (with their injected faults) becomes templates, and Spark stamps copies
of them: copy ``c`` of the pool is the same world replayed ``c`` spans later, with its own
event ids and session ids, so every event is unique, valid events stay valid, and event
time moves forward as it would live.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, LongType, StringType, StructField, StructType

from kappalake.config import Config
from kappalake.frames import local_frame
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.kafka_clients import spark_kafka_options
from kappalake.ingest.producer import ProduceSpec, make_producer, records
from kappalake.ingest.simulators.base import parse_ms

# Markers json.dumps leaves alone, swapped for format_string's positional arguments.
_MARKS = {"@@EID@@": "%1$s", "@@ET@@": "%2$s", "@@ST@@": "%3$s", "@@COPY@@": "%4$s"}
ISO_MS = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
_WRITE_OPTIONS = {"kafka.linger.ms": "20", "kafka.batch.size": "262144", "kafka.compression.type": "lz4"}
_POOL_SCHEMA = StructType([StructField(n, t) for n, t in (
    ("idx", LongType()), ("key", BinaryType()), ("template", StringType()), ("raw", BinaryType()), ("k", LongType()),
    ("t_ms", LongType()), ("et_off_ms", LongType()), ("lag_ms", LongType()))])


# A live feed joins every micro-batch with its templates by broadcast; with 50,000 of them that
# broadcast took about as much CPU as the sending (5,000 events/s, the feed alone: 43 CPU-s per
# 30 s with 50,000 templates, 18 with 2,000), on the cores the latency stages measure. 5,000
# still hold each fault kind about ten times.
LIVE_TEMPLATES = 5_000


@dataclass
class Pool:
    """Templates of one topic's simulated events: ``rows`` of (idx, key, template, raw, k, t_ms (send
    time in the pool's span), et_off_ms (event minus send time), lag_ms (sent_at minus event time))."""

    topic: str
    rows: list[tuple] = field(default_factory=list)
    span_ms: int = 0
    _frame: DataFrame | None = field(default=None, init=False, compare=False, repr=False)
    _live: Pool | None = field(default=None, init=False, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def live(self) -> Pool:
        """At most the first :data:`LIVE_TEMPLATES` templates, for a live feed (whose event and
        send times are the send time, so the pool's span does not matter)."""
        if len(self) <= LIVE_TEMPLATES:
            return self
        if self._live is None:
            self._live = Pool(self.topic, self.rows[:LIVE_TEMPLATES], self.span_ms)
        return self._live

    def frame(self, spark: SparkSession, cached: bool = False) -> DataFrame:
        """The rows as a DataFrame, from Arrow (Python rows would start Python workers at every
        use). ``cached``: built once and kept for the pool's life, for a feed that broadcasts it in
        every micro-batch (else each one ships all of it in a task)."""
        if not cached:
            return local_frame(spark, self.rows, _POOL_SCHEMA)
        if self._frame is None or self._frame.sparkSession is not spark:
            self._frame = local_frame(spark, self.rows, _POOL_SCHEMA).persist()
        return self._frame


def build_pool(cfg: Config, topic: str, size: int, seed: int = 7, rate: float = 500.0,
               faults: FaultRates | None = None) -> Pool:
    """Simulate ``size`` events of ``topic`` (``rate`` events per simulated second) as templates.

    Payloads the fault injector broke beyond JSON (bytes) are kept verbatim; the others get
    placeholders for event id, event time, send time and (clickstream) the session id.
    """
    faults = faults if faults is not None else FaultRates.uniform(0.002)
    spec = ProduceSpec(topic, count=size, seed=seed, faults=faults, span=size / rate)
    pool, ids = Pool(topic), {}
    for i, r in enumerate(records(cfg, spec)):
        key = r.key.encode() if isinstance(r.key, str) else r.key
        template, k, et_off, lag = None, 0, 0, 0
        value = r.value
        if isinstance(value, dict) and isinstance(value.get("event_id"), str) and _iso(value.get("event_time")) is not None:
            et = _iso(value["event_time"])
            et_off = et - r.due_ms  # late, early or absurd event times stay so, relative to sending
            st = _iso(value.get("sent_at"))
            k = ids.setdefault(value["event_id"], len(ids))  # a resend keeps its original's id
            d = dict(value, event_id="@@EID@@", event_time="@@ET@@")
            if st is not None:
                d["sent_at"], lag = "@@ST@@", st - et
            if isinstance(d.get("session_id"), str):
                d["session_id"] = d["session_id"] + "@@COPY@@"
            template = json.dumps(d, separators=(",", ":")).replace("%", "%%")
            for mark, arg in _MARKS.items():
                template = template.replace(mark, arg)
            value = None
        elif not isinstance(value, bytes):
            value = json.dumps(value, separators=(",", ":")).encode()
        pool.rows.append((i, key, template, value, k, r.due_ms, et_off, lag))
    first = min(r[5] for r in pool.rows)
    pool.rows = [(*r[:5], r[5] - first, *r[6:]) for r in pool.rows]
    pool.span_ms = max(int(size / rate * 1000), 1 + max(r[5] for r in pool.rows))
    return pool


def _iso(v: Any) -> int | None:
    if not isinstance(v, str):
        return None
    try:
        return parse_ms(v)
    except (ValueError, TypeError):
        return None


def expand(numbers: DataFrame, pool: DataFrame, size: int, span_ms: int, base_ms: Column, salt: int,
           now: Column | None = None) -> DataFrame:
    """``numbers`` (column ``n``) -> Kafka ``key``/``value`` rows stamped from the pool.

    Event ``n`` is template ``n % size`` in copy ``n / size``: event time = ``base_ms`` + copy
    * span + the template's offset; with ``now`` given, event and send time are ``now``
    instead (live feeds, where the send time is what latency is measured from).
    """
    c = (F.col("n") / size).cast("long")
    rows = numbers.withColumn("idx", F.col("n") % size).join(F.broadcast(pool), "idx")
    hexed = lambda x, w: F.lpad(F.lower(F.hex(x)), w, "0")  # noqa: E731
    eid = F.concat_ws("-", F.lit(f"{salt:08x}"), hexed((c / 65536).cast("long") % 65536, 4), hexed(c % 65536, 4),
                      F.lit("8000"), hexed(F.col("k"), 12))
    if now is None:
        et_ms = base_ms + c * span_ms + F.col("t_ms") + F.col("et_off_ms")
        et = F.date_format(F.timestamp_millis(et_ms), ISO_MS)
        st = F.date_format(F.timestamp_millis(et_ms + F.col("lag_ms")), ISO_MS)
    else:
        et = st = F.date_format(now, ISO_MS)
    stamped = F.call_function("format_string", F.col("template"), eid, et, st, F.concat(F.lit("-"), c.cast("string")))
    value = F.when(F.col("template").isNotNull(), F.encode(stamped, "UTF-8")).otherwise(F.col("raw"))
    return rows.select(F.col("key"), value.alias("value"))


def preload(spark: SparkSession, cfg: Config, topic: str, pool: Pool, count: int, salt: int | None = None,
            end_ms: int | None = None) -> float:
    """Write ``count`` events stamped from ``pool`` to ``topic`` with Spark's Kafka sink; seconds taken.

    Event times end at ``end_ms`` (default: now), so the newest event is current.
    """
    salt = salt if salt is not None else uuid.uuid4().int % 2**32
    copies = -(-count // len(pool))
    end_ms = end_ms or int(time.time() * 1000)
    base = F.lit(end_ms - copies * pool.span_ms)
    numbers = spark.range(0, count, numPartitions=max(2, spark.sparkContext.defaultParallelism)).withColumnRenamed("id", "n")
    out = expand(numbers, pool.frame(spark), len(pool), pool.span_ms, base, salt)
    start = time.perf_counter()
    (out.write.format("kafka").options(**spark_kafka_options(cfg.kafka_settings)).options(**_WRITE_OPTIONS)
     .option("topic", cfg.topic_name(topic)).save())
    return time.perf_counter() - start


def paced(spark: SparkSession, cfg: Config, topic: str, pool: Pool, rate: int, checkpoint: str,
          trigger: str = "100 milliseconds", salt: int | None = None):
    """Start a streaming query sending ``rate`` events/s from the pool to ``topic`` (Spark's rate
    source -> Kafka sink); event and send time are the micro-batch's time. Returns the query."""
    salt = salt if salt is not None else uuid.uuid4().int % 2**32
    numbers = (spark.readStream.format("rate").option("rowsPerSecond", rate).option("numPartitions", 2).load()
               .select(F.col("value").alias("n")))
    out = expand(numbers, pool.frame(spark, cached=True), len(pool), pool.span_ms, F.lit(0), salt, now=F.current_timestamp())
    return (out.writeStream.format("kafka").options(**spark_kafka_options(cfg.kafka_settings)).options(**_WRITE_OPTIONS)
            .option("topic", cfg.topic_name(topic)).option("checkpointLocation", checkpoint)
            .trigger(processingTime=trigger).queryName(f"bench_feed_{topic}").start())


class PacedProducer(threading.Thread):
    """kafka-python sending ``rate`` telemetry readings/s, each stamped with its send time at send.

    ``hot`` devices read ``hot_value`` for their engine temperature during the first
    ``hot_s`` of every ``period_s`` (the hard limit and the anomaly band both see it).
    """

    def __init__(self, cfg: Config, pool_values: list[dict], rate: int, hot: list[str], hot_value: float = 125.0,
                 hot_s: float = 20.0, period_s: float = 40.0):
        super().__init__(daemon=True, name="bench-paced-producer")
        self.cfg, self.pool, self.rate, self.hot = cfg, pool_values, rate, set(hot)
        self.hot_value, self.hot_s, self.period_s = hot_value, hot_s, period_s
        self.stop_event = threading.Event()
        self.sent = 0
        self.hot_sent = 0

    def run(self) -> None:
        producer = make_producer(self.cfg.kafka_settings, self.cfg.producer, linger_ms=0, compression_type=None, acks=1, enable_idempotence=False)
        topic = self.cfg.topic_name("telemetry")
        start = time.monotonic()
        try:
            for tpl in itertools.cycle(self.pool):
                if self.stop_event.is_set():
                    break
                due = start + self.sent / self.rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                now = dt.datetime.now(dt.timezone.utc)
                iso = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
                event = dict(tpl, event_id=str(uuid.uuid4()), event_time=iso, sent_at=iso)
                if event.get("device_id") in self.hot and (time.monotonic() - start) % self.period_s < self.hot_s:
                    event["engine_temp_c"] = self.hot_value
                    self.hot_sent += 1
                producer.send(topic, key=event["device_id"], value=event)
                self.sent += 1
        finally:
            producer.flush()
            producer.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)
