"""The one runner: Kafka source -> named transforms -> idempotent Delta sink, per ``conf/`` pipeline."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from kappalake.config import Config, ConfigError, TriggerConf
from kappalake.ingest.kafka_clients import spark_source_options
from kappalake.lake.tables import ensure_table
from kappalake.lake.writers import append_idempotent
from kappalake.transforms.registry import TRANSFORMS, get_transform


class PipelineError(RuntimeError):
    """A streaming query failed; the message names the pipeline and Spark's error."""


@dataclass
class QueryReport:
    pipeline: str
    batches: int
    input_rows: int
    seconds: float


def validate_pipelines(cfg: Config, names: Iterable[str] | None = None) -> list[str]:
    """Check pipeline names and transform names before anything starts; return the names."""
    selected = list(names or cfg.pipelines)
    for name in selected:
        if name not in cfg.pipelines:
            raise ConfigError(f"unknown pipeline {name!r}; configured pipelines: {', '.join(sorted(cfg.pipelines))}")
        for i, t in enumerate(cfg.pipelines[name].transforms):
            if t not in TRANSFORMS:
                raise ConfigError(
                    f"pipelines.{name}.transforms[{i}]: unknown transform {t!r}; known transforms: {', '.join(sorted(TRANSFORMS))}"
                )
    return selected


def read_source(spark: SparkSession, cfg: Config, pipeline: str) -> DataFrame:
    """The pipeline's Kafka topic as a streaming DataFrame (Spark's own Kafka source)."""
    source = cfg.pipelines[pipeline].source
    return spark.readStream.format("kafka").options(**spark_source_options(cfg, source)).load()


def apply_transforms(df: DataFrame, names: Iterable[str]) -> DataFrame:
    for name in names:
        df = get_transform(name)(df)
    return df


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


def start_pipeline(spark: SparkSession, cfg: Config, name: str, trigger: TriggerConf | None = None) -> StreamingQuery:
    """Start one pipeline's streaming query; its Delta table is created first if missing."""
    p = cfg.pipelines[name]
    df = apply_transforms(read_source(spark, cfg, name), p.transforms)
    path = cfg.lake.table_path(p.sink.table)
    ensure_table(spark, path, df.schema, p.sink.partition_by, cfg.lake.table_properties)

    # The query id is persisted in the checkpoint, so it is stable across restarts and new
    # when the checkpoint is reset: exactly what the Delta transaction app id must be.
    query_id = _Once()

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        append_idempotent(batch, path, app_id=f"kappalake/{name}/{query_id.get()}", version=batch_id)

    query = (
        df.writeStream.queryName(name)
        .option("checkpointLocation", cfg.lake.checkpoint_path(name))
        .trigger(**(trigger or p.trigger).as_writer_kwargs())
        .foreachBatch(write_batch)
        .start()
    )
    query_id.set(str(query.id))
    return query


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
    commits are atomic) and the next run resumes from the checkpoints.
    """
    selected = validate_pipelines(cfg, names)
    stop = threading.Event()
    restore = _install_signal_handlers(stop)
    start = time.monotonic()
    queries: dict[str, StreamingQuery] = {}
    seen: dict[str, int] = {}
    reports = {n: QueryReport(n, 0, 0, 0.0) for n in selected}
    try:
        for n in selected:
            queries[n] = start_pipeline(spark, cfg, n, trigger)
        while any(q.isActive for q in queries.values()):
            if stop.is_set() or (timeout is not None and time.monotonic() - start > timeout):
                break
            _collect_progress(queries, seen, reports, on_progress)
            time.sleep(0.5)
    finally:
        for q in queries.values():
            if q.isActive:
                q.stop()
        restore()
    _collect_progress(queries, seen, reports, on_progress)
    for n, q in queries.items():
        reports[n].seconds = time.monotonic() - start
        err = q.exception()
        if err is not None:
            # Spark's message leads with the error class and cause; the JVM stack trace follows.
            raise PipelineError(f"pipeline {n} failed: {' '.join(str(err).splitlines()[:3])}")
    return list(reports.values())


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
