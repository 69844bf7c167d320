"""``kappalake quarantine replay``: re-judge quarantined records after a fix, move those that pass.

Quarantined rows keep the raw Kafka record, so they can be run again through the pipeline's
current transforms and quality gate (a static batch: the same functions the stream runs).
Rows that now pass are appended to the pipeline's table and deleted from the quarantine;
rows whose event is already in the table (its dedup key) are duplicates and only deleted;
the rest stay, with their reasons updated to the current rules' verdict. Conflicting resends
(an event_id the table holds with other content) are not re-judged: they stay. Idempotent: a row already in the table (by Kafka coordinates) is
never appended again, so a rerun, or a rerun after a crash between the two commits, moves
nothing twice. Run one replay per pipeline at a time; the stream may keep running (its
appends do not conflict with the replay's delete under Delta's WriteSerializable isolation).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.config import Config, PipelineSpec
from kappalake.errors import ConfigError
from kappalake.lake.tables import read_table, table_exists
from kappalake.pipelines.compose import build_checked_batch
from kappalake.pipelines.plan import transform_specs
from kappalake.lake.quarantine import QuarantineUpsert, delete_quarantined
from kappalake.lake.writers import Append
from kappalake.quality.quarantine import COORDS, quarantine_rows, valid_rows
from kappalake.transforms.dedup import CONFLICT


@dataclass
class ReplayReport:
    pipeline: str
    examined: int = 0
    moved: int = 0        # appended to the table now
    duplicates: int = 0   # passed, but their event is already in the table
    remaining: int = 0    # still failing: left in quarantine
    conflicts: int = 0    # conflicting resends: not replayed, left in quarantine


def replay_pipelines(cfg: Config) -> list[str]:
    """The pipelines that have a quarantine table."""
    return [n for n, p in cfg.pipelines.items() if p.sink.quarantine]


def replay_quarantine(spark: SparkSession, cfg: Config, pipeline: str, dry_run: bool = False) -> ReplayReport:
    """Replay ``pipeline``'s quarantined records through its current transforms and rules."""
    if pipeline not in cfg.pipelines or not cfg.pipelines[pipeline].sink.quarantine:
        raise ConfigError(f"pipeline {pipeline!r} has no sink.quarantine; pipelines with one: "
                          f"{', '.join(replay_pipelines(cfg)) or 'none'}")
    spec = cfg.pipeline(pipeline)
    qpath, path = spec.quarantine_path, spec.sink_path
    report = ReplayReport(pipeline)
    quarantined = read_table(spark, qpath)
    if quarantined is None or not table_exists(spark, path):
        return report
    quarantined = quarantined.filter(F.col("pipeline") == pipeline)
    # Alone, a conflicting resend would pass and be taken for a duplicate of the event it conflicts with.
    report.conflicts = quarantined.filter(F.col("reason") == CONFLICT).count()
    quarantined = quarantined.filter(F.col("reason") != CONFLICT)
    raw = quarantined.select(
        F.col("key").cast("binary").alias("key"), F.col("payload").alias("value"), *COORDS,
        "kafka_timestamp", "headers").persist()
    try:
        report.examined = raw.count()
        if not report.examined:
            return report
        evaluated = build_checked_batch(spark, spec, source=raw).persist()
        passing = valid_rows(evaluated).persist()
        try:
            table = spark.read.format("delta").load(path)
            fresh = passing.join(table.select(*COORDS), COORDS, "left_anti")  # not moved by an earlier run
            key = _dedup_key(spec)
            if key is not None:
                new = fresh.join(table.select(key).distinct(), key, "left_anti")
            else:
                new = fresh
            new = new.persist()
            report.moved = new.count()
            passed = passing.count()
            report.duplicates = fresh.count() - report.moved
            report.remaining = report.examined - passed
            if dry_run:
                new.unpersist()
                return report
            if report.moved:
                # Idempotent without a txn: a rerun's anti-join above leaves out what it appended.
                Append(path).write(new.select(*table.columns))
            new.unpersist()
            if passed:
                delete_quarantined(qpath, pipeline, passing)
            QuarantineUpsert(qpath, pipeline, insert=False).write(quarantine_rows(evaluated, pipeline))
        finally:
            passing.unpersist()
            evaluated.unpersist()
    finally:
        raw.unpersist()
    return report


def _dedup_key(spec: PipelineSpec) -> str | None:
    for t in transform_specs(spec):
        if t.name == "dedup":
            return t.params.get("key", "event_id")
    return None
