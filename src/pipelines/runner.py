"""The one runner: source -> named transforms -> idempotent Delta sink(s), per ``conf/`` pipeline.

Sources are Kafka topics or Delta tables read as streams (bronze -> silver), composed with
their transforms and quality gate by :mod:`kappalake.pipelines.compose`. When the sink
table has an expectation suite or a quarantine table, each micro-batch goes through the
quality gate: kept rows to the table, quarantined rows (contract errors, failed quarantine
rules) to the quarantine, the batch's counts to the quality-metrics table, each write
idempotent with its own transaction app id; a violated ``fail`` rule stops the query.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from kappalake.config import Config, PipelineSpec, TriggerConf
from kappalake.errors import ConfigError, PipelineError
from kappalake.ingest.kafka_clients import spark_kafka_options
from kappalake.lake.sinks import sink_writer
from kappalake.lake.tables import ensure_table
from kappalake.lake.writers import Append, Txn
from kappalake.monitoring.recording import Recording
from kappalake.pipelines.batches import BatchWriters, write_checked, write_plain
from kappalake.pipelines.compose import (after_commit_hooks, apply_transforms, quality_gate, read_source,
                                         sink_schema)
from kappalake.pipelines.guards import check_checkpoint, check_retention
from kappalake.pipelines.plan import depth, validate_pipelines
from kappalake.pipelines.routes import check_routes, create_route_tables, route_writers
from kappalake.quality.metrics import PARTITION_BY as METRICS_PARTITIONS, SCHEMA as METRICS_SCHEMA
from kappalake.quality.quarantine import quarantine_rows, valid_rows
from kappalake.transforms.dedup import settle
from kappalake.transforms.parse import ERRORS

log = logging.getLogger("kappalake.pipelines")


@dataclass
class QueryReport:
    pipeline: str
    batches: int
    input_rows: int
    seconds: float


class _Once:
    """A value set by one thread after another may already be waiting for it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.value: str | None = None

    def set(self, value: str) -> None:
        self.value = value
        self._event.set()

    def get(self, timeout: float = 120.0) -> str:
        if not self._event.wait(timeout):
            raise PipelineError("streaming query id was never published to its batch writer")
        return self.value  # type: ignore[return-value]


def start_pipeline(spark: SparkSession, spec: PipelineSpec, trigger: TriggerConf | None = None,
                   closers: list[Callable[[], object]] | None = None) -> StreamingQuery:
    """Start one pipeline's streaming query; its Delta table(s) are created first if missing.

    ``closers`` collects what must run after the query stops (notifications under way).
    """
    p, name = spec.conf, spec.name
    trigger = trigger or p.trigger
    check_retention(spark, spec)
    df = apply_transforms(spark, spec, read_source(spark, spec))
    check_checkpoint(spark, spec, df)
    if p.sink.topic is not None:
        return _start_kafka_sink(spark, spec, df, trigger)
    shape = settle(spark.createDataFrame([], df.schema))  # the columns of a micro-batch as written
    path, qpath, props = spec.sink_path, spec.quarantine_path, spec.table_properties
    if qpath is not None and ERRORS not in shape.columns:
        raise ConfigError(f"pipelines.{name}.sink.quarantine needs a transform that reports errors (parse_events)")
    named = p.sink.keys + p.sink.partition_by + [k for k in (p.sink.time_column,) if k]
    missing = [k for k in named + ([p.sink.publish_key] if p.sink.publish else []) if k not in shape.columns]
    if missing:
        raise ConfigError(f"pipelines.{name}.sink names columns the transforms do not produce: {', '.join(missing)}; "
                          f"columns: {', '.join(shape.columns)}")
    gate = quality_gate(spec, shape)
    if qpath is not None:
        ensure_table(spark, qpath, quarantine_rows(gate.evaluate(shape), name).schema, ["kafka_date"], props)
    mpath = spec.metrics_path if gate is not None else None
    if mpath is not None:
        ensure_table(spark, mpath, METRICS_SCHEMA, METRICS_PARTITIONS, props)
    ensure_table(spark, path, sink_schema(spec, shape), p.sink.partition_by, props)
    if spec.routes:
        kept = valid_rows(shape, drop_raw=qpath is not None)
        check_routes(spec, kept)
        create_route_tables(spark, spec, kept)
    for topic in spec.output_topics:  # the publish and route topics (a table sink has no sink topic)
        _ensure_output_topic(spec, topic)
    after_commit = after_commit_hooks(spark, spec, closers)
    writers = BatchWriters(name, p.sink.table, sink_writer(p.sink, path), Append(qpath) if qpath else None,
                           Append(mpath) if mpath else None, tuple(after_commit), route_writers(spec))

    # The query id is persisted in the checkpoint, so it is stable across restarts and new
    # when the checkpoint is reset: exactly what the Delta transaction app id must be.
    query_id = _Once()

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        txn = Txn(f"kappalake/{name}/{query_id.get()}", batch_id)
        batch = settle(batch)
        if gate is None:
            write_plain(batch, txn, writers)
        else:
            write_checked(spark, gate, batch, txn, writers)

    query = (
        df.writeStream.queryName(name)
        .outputMode(p.sink.output_mode if p.sink.mode == "merge" else "append")
        .option("checkpointLocation", spec.checkpoint)
        .trigger(**trigger.as_writer_kwargs())
        .foreachBatch(write_batch)
        .start()
    )
    query_id.set(str(query.id))
    return query


def _start_kafka_sink(spark: SparkSession, spec: PipelineSpec, df: DataFrame, trigger: TriggerConf) -> StreamingQuery:
    """Rows with ``key``/``value`` to a Kafka topic: at-least-once, micro-batch or continuous."""
    name = spec.name
    if "value" not in df.columns:
        raise ConfigError(f"pipelines.{name}.sink.topic needs a 'value' column (and optionally 'key') from the transforms; "
                          f"columns: {', '.join(df.columns)}")
    if trigger.continuous:
        _check_continuous_slots(spark, spec)
    _ensure_output_topic(spec, spec.sink_topic)
    return (
        df.select(*[c for c in ("key", "value") if c in df.columns]).writeStream.queryName(name)
        .format("kafka").options(**spark_kafka_options(spec.kafka)).option("topic", spec.sink_topic)
        .option("checkpointLocation", spec.checkpoint)
        .trigger(**trigger.as_writer_kwargs())
        .start()
    )


def _ensure_output_topic(spec: PipelineSpec, topic: str) -> None:
    """Create a topic the pipeline writes to if missing (as `topics create` would), at start-up
    rather than as a metadata timeout in the first batch."""
    from kappalake.ingest.topics import ensure_topics

    try:
        ensure_topics(spec.kafka, {topic: spec.output_topics[topic]})
    except Exception as e:  # noqa: BLE001 - no broker, no permission to create: say which topic and why
        raise PipelineError(f"pipeline {spec.name} writes to Kafka topic {topic}, which does not exist and could not be "
                            f"created on {spec.kafka.bootstrap_servers} ({type(e).__name__}: {e}); create it "
                            f"(kappalake topics create) or fix kafka.*") from None


def _check_continuous_slots(spark: SparkSession, spec: PipelineSpec) -> None:
    """A continuous query holds one task slot per Kafka partition for as long as it runs."""
    master, name = spark.sparkContext.master, spec.name
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if not m:
        return
    slots = (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1) or 1)
    partitions = spec.source_partitions
    if slots < partitions + 1:
        raise ConfigError(
            f"pipelines.{name}.trigger.continuous holds {partitions} task slots (one per partition of its topic) for as "
            f"long as it runs, and spark.master {master!r} has {slots}: set spark.master: local[{partitions + 2}] or more "
            f"(threads, not cores), or use trigger.processing_time")


def run_pipelines(
    spark: SparkSession,
    cfg: Config,
    names: Iterable[str] | None = None,
    trigger: TriggerConf | None = None,
    timeout: float | None = None,
    on_progress: Callable[[str, dict], None] | None = None,
) -> list[QueryReport]:
    """Run pipelines until they finish (availableNow), ``timeout`` passes, or SIGTERM/SIGINT.

    Stopping is graceful: queries are stopped, nothing half-written is visible (Delta
    commits are atomic) and the next run resumes from the checkpoints. With availableNow
    triggers, pipelines run in waves by dependency (bronze to completion, then silver...), so
    a downstream query sees everything its upstream wrote in this run.
    """
    selected = validate_pipelines(cfg, names)
    specs = {n: cfg.pipeline(n) for n in selected}
    stop = threading.Event()
    restore = _install_signal_handlers(stop)
    start = time.monotonic()
    queries: dict[str, StreamingQuery] = {}
    closers: list[Callable[[], object]] = []
    seen: dict[str, int] = {}
    reports = {n: QueryReport(n, 0, 0, 0.0) for n in selected}
    if all((trigger or specs[n].conf.trigger).available_now for n in selected):
        levels = {n: depth(cfg.pipelines, n) for n in selected}
        waves = [[n for n in selected if levels[n] == d] for d in sorted(set(levels.values()))]
    else:
        waves = [selected]
    recording = Recording(spark, cfg.monitoring, cfg.lake, cfg.kafka_settings)
    try:
        for wave in waves:
            wave_start = time.monotonic()
            for n in wave:
                queries[n] = start_pipeline(spark, specs[n], trigger, closers)
            while any(queries[n].isActive for n in wave):
                if stop.is_set() or (timeout is not None and time.monotonic() - start > timeout):
                    break
                # One failed query stops the job (the others too): it exits non-zero for its
                # supervisor to restart, rather than running on with a table no longer fed.
                if any(not queries[n].isActive and queries[n].exception() is not None for n in wave):
                    break
                _collect_progress(queries, seen, reports, on_progress)
                recording.tick()
                for n in wave:
                    if not queries[n].isActive and not reports[n].seconds:
                        reports[n].seconds = time.monotonic() - wave_start
                time.sleep(0.5)
            for n in wave:
                reports[n].seconds = reports[n].seconds or time.monotonic() - wave_start
            if stop.is_set() or any(queries[n].exception() is not None for n in wave):
                break
            if timeout is not None and time.monotonic() - start > timeout:
                break
    finally:
        for q in queries.values():
            if q.isActive:
                q.stop()
        try:
            recording.close()
            for close in closers:
                try:
                    close()
                except Exception as e:  # noqa: BLE001 - the others still get closed; the query's own error wins
                    log.warning("closing %s failed: %s", getattr(close, "__qualname__", close), e)
        finally:
            restore()
    _collect_progress(queries, seen, reports, on_progress)
    for n, q in queries.items():
        err = q.exception()
        if err is not None:
            raise PipelineError(f"pipeline {n} failed: {_failure(str(err))}{_advice(specs[n], str(err))}")
    return list(reports.values())


def _failure(message: str) -> str:
    """Spark's error class and cause, plus the Python exception when a batch writer raised one
    (or, when that is py4j's wrapper of a failed Spark call, Spark's error and its root cause)."""
    lines = message.splitlines()
    python = [ln.strip() for ln in lines if re.match(r"\s*[\w.]*(Error|Exception): ", ln)]
    java = [ln[2:].strip() for ln in lines if re.match(r": [\w.$]+(Exception|Error)\b", ln)]
    if python and python[-1].startswith("py4j.protocol.Py4JJavaError") and java:
        causes = [ln.removeprefix("Caused by: ").strip() for ln in lines if ln.startswith("Caused by: ")]
        root = f" (root cause: {causes[-1][:300]})" if causes and causes[-1] not in java[0] else ""
        return java[0][:500] + root
    return " ".join(lines[:1] + python[-1:] if python else lines[:3])


# Failures of the environment rather than the code, found anywhere in Spark's error and its
# causes: (pattern, where: lake or kafka, what it means, what to do).
_ENVIRONMENT = [
    (r"No space left on device|Disk quota exceeded", "lake", "the filesystem of the lake or checkpoints is full",
     "free space or grow the volume"),
    (r"Permission denied|Operation not permitted|Read-only file system|AccessDenied|403 Forbidden", "lake",
     "no write access to the lake or checkpoints", "fix the permissions (or the IAM role on S3)"),
    (r"TimeoutException: Timed out waiting for a node assignment|TimeoutException: Timeout of \d+ms expired|"
     r"Connection to node -?\d+ .* could not be established|Cannot fetch record for offset \d+ in \d+ milliseconds",
     "kafka", "Kafka was unreachable",
     "check the brokers and kafka.bootstrap_servers (kafka.outage_wait_s sets how long a stream waits)"),
]


def _advice(spec: PipelineSpec, message: str) -> str:
    """A sentence on what an environment failure means and that a restart is safe, or ''."""
    for pattern, place, meaning, fix in _ENVIRONMENT:
        m = re.search(pattern, message)
        if m:
            where = spec.kafka.bootstrap_servers if place == "kafka" else spec.sink_path or spec.lake.root
            return (f" -- {meaning} ({m.group(0)}; {where}): {fix}, then restart; Delta commits are atomic, so "
                    f"the tables are intact and the stream resumes from its checkpoint")
    return ""


def _collect_progress(queries: dict[str, StreamingQuery], seen: dict[str, int], reports: dict[str, QueryReport],
                      on_progress: Callable[[str, dict], None] | None) -> None:
    for n, q in queries.items():
        for prog in q.recentProgress:
            if prog["batchId"] <= seen.get(n, -1):
                continue
            seen[n] = prog["batchId"]
            rows = prog.get("numInputRows", 0)
            if rows:
                reports[n].batches += 1
                reports[n].input_rows += rows
            if on_progress:
                on_progress(n, prog)


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda *_: stop.set())

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
