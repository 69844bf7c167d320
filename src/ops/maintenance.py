"""`kappalake maintain`: OPTIMIZE (bin-packing or Z-ORDER) and a VACUUM that never deletes a file
a stream still has to read.

VACUUM deletes files that were removed from the table more than ``retain`` hours ago. A stream
reading a table from Delta resumes at the version after the one its checkpoint has finished,
and reads the files *added* by each later version, even if OPTIMIZE removed them since. So
the retention actually used is at least the age of the oldest version any reader's checkpoint
still has to go on from, plus a margin.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.config import Config
from kappalake.errors import CheckpointError, ConfigError
from kappalake.lake.tables import table_exists
from kappalake.lake.writers import retry_on_conflict
from kappalake.pipelines.checkpoints import delta_source_version, last_committed


@dataclass
class Reader:
    pipeline: str
    version: int          # the newest version of the table the reader has finished (-1: none)
    hours: float          # age of the first version it has still to read (0: none yet)


@dataclass
class MaintainReport:
    table: str
    files_before: int = 0
    files_after: int = 0
    optimized: str | None = None          # "compaction" or "Z-ORDER BY a, b"
    vacuum_retain_hours: float | None = None
    vacuum_deleted: int = 0
    readers: list[Reader] = field(default_factory=list)
    seconds: float = 0.0


def _commit_times(spark: SparkSession, path: str, versions: set[int]) -> dict[int, datetime]:
    """Commit time of each of ``versions`` still in the log (one read of the table's history)."""
    if not versions:
        return {}
    rows = (DeltaTable.forPath(spark, path).history().filter(F.col("version").isin(sorted(versions)))
            .select("version", "timestamp").collect())
    return {r["version"]: r["timestamp"].replace(tzinfo=timezone.utc) for r in rows}


def readers_of(spark: SparkSession, cfg: Config, table: str) -> list[Reader]:
    """The pipelines streaming from ``table`` that have a checkpoint, and how far back they still read."""
    path = cfg.lake.table_path(table)
    now = datetime.now(timezone.utc)
    latest = DeltaTable.forPath(spark, path).history(1).select("version").first()[0]
    finished: dict[str, int] = {}
    for name, p in cfg.pipelines.items():
        if p.source.table != table:
            continue
        try:
            done = delta_source_version(spark, cfg.pipeline(name))
        except CheckpointError:  # part-way through a version: it needs that version's files
            done = int(last_committed(spark, cfg.pipeline(name)).offset["reservoirVersion"]) - 1
        if done is not None:  # None: never started, it will begin from the snapshot current then
            finished[name] = done
    # A reader reads the files added by the versions after ``done``; any of them removed since
    # was removed after the first of those versions was committed.
    times = _commit_times(spark, path, {d + 1 for d in finished.values() if d + 1 <= latest})
    out = []
    for name, done in finished.items():
        since = times.get(done + 1) if done + 1 <= latest else now
        out.append(Reader(name, done, (now - since).total_seconds() / 3600 if since else math.inf))
    return out


def _files(spark: SparkSession, path: str) -> int:
    return DeltaTable.forPath(spark, path).detail().select("numFiles").first()[0]


def maintain_table(spark: SparkSession, cfg: Config, table: str, optimize: bool = True, vacuum: bool = True,
                   retain_hours: float | None = None, force: bool = False, dry_run: bool = False) -> MaintainReport:
    """OPTIMIZE then VACUUM one table; see the module docstring for the retention used."""
    began = time.monotonic()
    m = cfg.maintenance
    path = cfg.lake.table_path(table)
    report = MaintainReport(table)
    requested = m.retain_hours if retain_hours is None else retain_hours
    if vacuum and requested < m.min_retain_hours and not force:
        raise ConfigError(f"VACUUM retaining {requested:g} hours of {table} is below maintenance.min_retain_hours "
                          f"({m.min_retain_hours:g}): time travel beyond that breaks, and so would readers further "
                          f"behind than kappalake can see (other jobs, other clusters). Pass --force to do it anyway "
                          f"(streams configured here are still protected), or retain longer")
    if not table_exists(spark, path):
        raise ConfigError(f"{table} is not a Delta table yet at {path}: run its pipeline first")
    delta = DeltaTable.forPath(spark, path)
    report.files_before = report.files_after = _files(spark, path)
    if optimize:
        columns = m.zorder.get(table)
        report.optimized = f"Z-ORDER BY {', '.join(columns)}" if columns else "compaction"
        if not dry_run:
            builder = lambda: delta.optimize()  # noqa: E731 - a fresh builder per attempt
            retry_on_conflict(lambda: builder().executeZOrderBy(*columns) if columns else builder().executeCompaction(),
                              what=f"OPTIMIZE of {table}")
            report.files_after = _files(spark, path)
    if vacuum:
        report.readers = readers_of(spark, cfg, table)
        oldest = max((r.hours for r in report.readers), default=0.0)
        if math.isinf(oldest):
            raise ConfigError(f"cannot date the version a reader of {table} goes on from (its commit is no longer in "
                              f"the Delta log): VACUUM skipped")
        # Delta rounds RETAIN ... HOURS to whole hours: round up, never down.
        retain = math.ceil(max(requested, oldest + m.reader_margin_hours if oldest > 0 else 0.0))
        report.vacuum_retain_hours = retain
        report.vacuum_deleted = _vacuum(spark, path, retain, dry_run)
    report.seconds = time.monotonic() - began
    return report


def _vacuum(spark: SparkSession, path: str, retain_hours: int, dry_run: bool) -> int:
    """Files VACUUM deletes (or would, with ``dry_run``) at ``retain_hours``."""
    # Delta's own guard refuses less than the table's deletedFileRetentionDuration (7 days by
    # default); the checks above replace it, so it is lifted for this command only.
    key = "spark.databricks.delta.retentionDurationCheck.enabled"
    before = spark.conf.get(key, "true")
    spark.conf.set(key, "false")
    # VACUUM lists the table's directories in a job of spark.sql.sources.parallelPartitionDiscovery
    # .parallelism tasks, 10,000 by default: minutes of empty tasks on a small cluster.
    tasks = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    tasks_before = spark.conf.get(tasks, "10000")
    spark.conf.set(tasks, str(max(2, min(int(tasks_before), spark.sparkContext.defaultParallelism * 4))))
    try:
        hours = int(retain_hours)
        doomed = spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS DRY RUN").count()
        if doomed and not dry_run:
            spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS")
        return doomed
    finally:
        spark.conf.set(key, before)
        spark.conf.set(tasks, tasks_before)


def maintained_tables(spark: SparkSession, cfg: Config, tables: list[str] | None) -> list[str]:
    """``tables`` (checked against the configuration), or every configured table that exists."""
    known = cfg.tables()
    for t in tables or []:
        if t not in known:
            raise ConfigError(f"unknown table {t!r}; configured tables: {', '.join(known)}")
    return tables or [t for t in known if table_exists(spark, cfg.lake.table_path(t))]
