"""How one micro-batch of a pipeline is written: to its sink, and with a quality gate judged first,
then kept rows (and their routes), quarantined rows and the batch's quality metrics side by side, each idempotent
under the batch's transaction (:class:`~kappalake.lake.writers.Txn`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from kappalake.frames import local_frame
from kappalake.lake.writers import Txn, Writer
from kappalake.pipelines.compose import AfterCommit
from kappalake.pipelines.routes import RouteWriter
from kappalake.quality.gate import BatchQuality, QualityGate
from kappalake.quality.metrics import SCHEMA as METRICS_SCHEMA, metrics_row
from kappalake.quality.quarantine import quarantine_rows, valid_rows


@dataclass(frozen=True)
class BatchWriters:
    """Where a pipeline's micro-batches go: its sink, and with a quality gate its quarantine and
    the quality-metrics table; ``after_commit`` hooks get the kept rows once the sink committed."""

    pipeline: str
    table: str
    sink: Writer
    quarantine: Writer | None = None
    metrics: Writer | None = None
    after_commit: tuple[AfterCommit, ...] = ()
    routes: tuple[RouteWriter, ...] = ()  # beside the sink, from the same kept rows


def write_plain(batch: DataFrame, txn: Txn, writers: BatchWriters) -> None:
    """A batch without a quality gate: to the sink (then to the hooks) and its routes."""
    if not writers.after_commit and not writers.routes:
        write_kept(batch, writers.sink, txn)
        return
    batch = batch.persist()  # read by the write, the routes and the hooks
    try:
        if not batch.isEmpty():
            def kept_then_hooks() -> None:
                write_kept(batch, writers.sink, txn)
                for hook in writers.after_commit:  # after the commit: Delta exactly once, then Kafka/notifiers
                    hook(batch)
            run_together([kept_then_hooks] + _route_writes(batch, txn, writers))
    finally:
        batch.unpersist()


def _route_writes(kept: DataFrame, txn: Txn, writers: BatchWriters) -> list[Callable[[], None]]:
    return [lambda r=r: r.write(kept, txn) for r in writers.routes]


def write_kept(rows: DataFrame, writer: Writer, txn: Txn) -> None:
    """The kept rows of a batch to the pipeline's table (one function, so profiles can time it)."""
    writer.write(rows, txn)


def write_metrics(spark: SparkSession, writer: Writer, pipeline: str, table: str, quality: BatchQuality,
                  txn: Txn) -> None:
    """Append the batch's quality counts once per batch: a replayed batch adds nothing."""
    writer.write(local_frame(spark, [metrics_row(pipeline, table, txn.version, quality)], METRICS_SCHEMA),
                 txn.sub("quality"))


def write_quarantine(evaluated: DataFrame, writer: Writer, pipeline: str, txn: Txn) -> None:
    """Append the batch's quarantined rows once per batch."""
    writer.write(quarantine_rows(evaluated, pipeline), txn.sub("quarantine"))


def write_checked(spark: SparkSession, gate: QualityGate, batch: DataFrame, txn: Txn, writers: BatchWriters) -> None:
    """Judge a batch, stop on a violated ``fail`` rule, else write the kept rows (then run the
    ``after_commit`` hooks on them), the quarantined rows and the batch's quality metrics, each
    idempotently under the batch's ``txn``."""
    evaluated = gate.evaluate(batch).persist()  # read by the counts, each side and the hooks
    try:
        quality = gate.measure(evaluated)
        if not quality.rows_in:
            return
        gate.enforce(evaluated, quality, txn.version)  # before anything of this batch is written
        # An empty side is skipped; a replay of this batch has the same rows, so it skips it too.
        writes: list[Callable[[], None]] = []
        if quality.kept:
            kept = valid_rows(evaluated, drop_raw=writers.quarantine is not None)

            def kept_then_hooks() -> None:
                write_kept(kept, writers.sink, txn)
                for hook in writers.after_commit:
                    hook(kept)
            writes.append(kept_then_hooks)
            writes += _route_writes(kept, txn, writers)
        if quality.count("quarantined"):
            writes.append(lambda: write_quarantine(evaluated, writers.quarantine, writers.pipeline, txn))
        writes.append(lambda: write_metrics(spark, writers.metrics, writers.pipeline, writers.table, quality, txn))
        run_together(writes)
    finally:
        evaluated.unpersist()


# The writes of one batch go to different tables, each idempotent on its own: they run side by
# side, so a batch costs about one Delta commit instead of three (each ~0.5 s of mostly fixed
# cost on a small batch). Threads that live with the process: pinned to JVM threads by PySpark.
_WRITES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kappalake-write")


def run_together(writes: Sequence[Callable[[], None]]) -> None:
    """Run ``writes`` concurrently and wait for all; the first failure is raised (the batch fails
    and is replayed, and the writes that committed skip themselves then)."""
    if len(writes) == 1:
        writes[0]()
        return
    futures = [_WRITES.submit(w) for w in writes]
    errors = [f.exception() for f in futures]  # waits for each
    for e in errors:
        if e is not None:
            raise e
