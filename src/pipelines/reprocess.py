"""``kappalake reprocess``: rebuild a table, or a time range of it, with the current code.

The Kappa way has one code path: the transforms and quality rules the stream runs are
applied as a batch job (:func:`build_checked_batch`), and the result replaces exactly the
rebuilt part of the table in one Delta commit, while the live stream keeps running.

- **Range** (``--from``/``--to`` on the sink's ``time_column``; either may be open): the rows
  are recomputed from the pipeline's source table and replace the range (``replaceWhere``).
  A table fed row by row (silver) is rebuilt from the source version its stream has
  committed (read from the checkpoint), and the commit replaces only rows of the Kafka offsets
  read: what the stream has not read yet, it still writes itself, whenever the commit lands, so
  nothing is counted twice or lost. Its quarantine follows (the range's current verdicts). Keyed tables (gold,
  MERGE sinks) are rebuilt from the source's latest version; the stream keeps MERGE-ing
  complete windows over them (an open window the stream updates while the reprocess runs
  keeps the reprocess's total until its next update; closed windows, e.g. yesterday's, are
  only written by the reprocess). When the result equals the table nothing is written, so a
  rerun changes nothing.
- **Full replay from Kafka** (``--full`` for tables fed from Kafka row by row, e.g. bronze and
  silver): the table's pipelines from the topic down are run, as streams with their own
  checkpoints, from the earliest retained offsets into side tables (``<table>__rebuild``).
  Once the live stream has passed the offsets the rebuild read, the rows of those offsets
  are swapped in: one ``replaceWhere`` commit on the Kafka coordinates (the table's next
  version), then the same for its quarantine. Rows of older offsets (beyond Kafka's
  retention) and newer ones (the live stream's) stay as they are.

Blind appends (the stream's micro-batches) never conflict with these overwrites under
Delta's WriteSerializable isolation; a MERGE that does is retried, on both sides.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from kappalake.config import Config, TriggerConf
from kappalake.errors import ConfigError, PipelineError
from kappalake.lake.files import delete_path
from kappalake.lake.quarantine import QuarantineUpsert, delete_quarantined
from kappalake.lake.sinks import with_rank
from kappalake.lake.tables import table_exists
from kappalake.lake.writers import ReplaceRange, retry_on_conflict
from kappalake.pipelines.checkpoints import delta_source_version, kafka_next_offsets
from kappalake.pipelines.compose import build_checked_batch, read_static_source
from kappalake.pipelines.plan import transform_specs
from kappalake.pipelines.runner import run_pipelines
from kappalake.quality.gate import OUTCOME
from kappalake.quality.quarantine import COORDS, quarantine_rows, valid_rows

SIDE = "__rebuild"
ARRIVAL_TIME = "kafka_timestamp"  # events arrive after they happen: no upper bound on it for a range
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day)s?\s*$", re.I)
_UNIT = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

Progress = Callable[[str], None]


@dataclass
class ReprocessReport:
    table: str
    pipeline: str
    scope: str
    source: str = ""
    before: int = 0        # rows of the rebuilt part before
    after: int = 0         # rows of it now
    added: int = 0         # rows that were not there before (new or changed)
    removed: int = 0       # rows that are gone (dropped or changed)
    quarantined: int = 0   # rows of the part the current rules quarantine
    version: int | None = None  # the table's new version; None when nothing changed (or a dry run)
    attempts: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not self.added and not self.removed


def writer_of(cfg: Config, table: str) -> str:
    """The one pipeline writing ``table``; a configuration error when it cannot be reprocessed."""
    writers = [n for n, p in cfg.pipelines.items() if p.sink.table == table]
    if not writers:
        tables = sorted({p.sink.table for p in cfg.pipelines.values() if p.sink.table})
        raise ConfigError(f"--table {table}: no pipeline writes it; tables: {', '.join(tables)}")
    sink = cfg.pipelines[writers[0]].sink
    if len(writers) > 1 or sink.publish or sink.notify:
        raise ConfigError(f"--table {table} is written by {', '.join(writers)} and publishes or notifies (alerts): "
                          f"rebuilding it would send its alerts again; reprocess the tables it reads instead")
    return writers[0]


def parse_time(value: str | None, flag: str) -> datetime | None:
    """An ISO-8601 date or timestamp as an aware UTC datetime (naive means UTC)."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is not an ISO-8601 date or timestamp, e.g. 2026-11-24 or "
                          f"2026-11-24T06:00:00Z") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _seconds(value: object) -> float:
    m = _DURATION.match(str(value))
    return float(m.group(1)) * _UNIT[m.group(2).lower()] if m else 0.0


def default_margin(cfg: Config, pipeline: str) -> timedelta:
    """Source rows read beyond the range on each side, so windows, sessions and duplicates at its
    edges are whole: twice the pipeline's longest window/gap/slide/horizon/delay, at least an hour."""
    longest = max((_seconds(v) for t in transform_specs(cfg.pipeline(pipeline))
                   for k, v in t.params.items() if k in ("window", "slide", "gap", "horizon", "delay")), default=0.0)
    return max(timedelta(hours=1), timedelta(seconds=2 * longest))


def _ts(t: datetime) -> Column:
    return F.timestamp_micros(F.lit(int(t.timestamp() * 1_000_000)))


def _sql_ts(t: datetime) -> str:
    return f"TIMESTAMP'{t.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S.%f}+00:00'"


def _describe(start: datetime | None, end: datetime | None, column: str) -> str:
    lo = f"{start:%Y-%m-%d %H:%M:%S}" if start else "the beginning"
    hi = f"{end:%Y-%m-%d %H:%M:%S}" if end else "now"
    return f"{column} from {lo} to {hi} UTC"


def _comparable(df: DataFrame, columns: list[str]) -> DataFrame:
    """``columns`` of ``df`` in a form set operations accept (maps as JSON text)."""
    out = []
    for c in columns:
        kind = df.schema[c].dataType.typeName()
        out.append(F.to_json(F.col(c)).alias(c) if kind == "map" else F.col(c))
    return df.select(*out)


def _diff(old: DataFrame, new: DataFrame, report: ReprocessReport) -> None:
    common = [c for c in new.columns if c in old.columns]
    o, n = _comparable(old, common), _comparable(new, common)
    report.before, report.after = old.count(), new.count()
    report.added = n.exceptAll(o).count()
    report.removed = o.exceptAll(n).count()


def _version(spark: SparkSession, path: str) -> int:
    return DeltaTable.forPath(spark, path).history(1).select("version").first()[0]


def reprocess_range(spark: SparkSession, cfg: Config, table: str, start: datetime | None = None,
                    end: datetime | None = None, dry_run: bool = False, margin: timedelta | None = None,
                    progress: Progress = lambda _: None) -> ReprocessReport:
    """Rebuild ``table``'s rows whose ``time_column`` is in ``[start, end)`` (open ends: all) from the
    pipeline's source table with the current transforms and rules; see the module docstring."""
    began = time.monotonic()
    name = writer_of(cfg, table)
    p = cfg.pipelines[name]
    column = p.sink.time_column
    if p.source.topic is not None:
        raise ConfigError(f"--table {table} is written straight from Kafka by {name}: rebuild it with --full "
                          f"(replays the topic from the earliest retained offset)")
    if (start or end) and column is None:
        raise ConfigError(f"pipelines.{name}.sink.time_column is not set: name the column --from/--to apply to "
                          f"(e.g. event_time), or reprocess the whole table without --from/--to")
    if start and end and start >= end:
        raise ConfigError(f"--from {start:%Y-%m-%dT%H:%M:%S} is not before --to {end:%Y-%m-%dT%H:%M:%S}")
    path = cfg.lake.table_path(table)
    if not table_exists(spark, path):
        raise PipelineError(f"{table} does not exist yet at {path}: run its pipeline ({name}) first")
    report = ReprocessReport(table, name, _describe(start, end, column or "time") if (start or end) else "whole table")
    margin = margin if margin is not None else default_margin(cfg, name)
    upstream = [n for n, q in cfg.pipelines.items() if q.sink.table == p.source.table]
    source_column = cfg.pipelines[upstream[0]].sink.time_column if upstream else None
    in_range = F.lit(True)
    predicate = None
    if start is not None:
        in_range &= F.col(column) >= _ts(start)
        predicate = f"`{column}` >= {_sql_ts(start)}"
    if end is not None:
        in_range &= F.col(column) < _ts(end)
        predicate = " AND ".join(filter(None, [predicate, f"`{column}` < {_sql_ts(end)}"]))
    qpath = cfg.lake.table_path(p.sink.quarantine) if p.sink.quarantine else None

    def attempt() -> None:
        report.attempts += 1
        # Rows fed one by one: only what the stream has committed; the rest is still the stream's.
        version = delta_source_version(spark, cfg.pipeline(name)) if p.sink.mode == "append" else None
        if version == -1:
            raise PipelineError(f"pipeline {name} has not committed a batch of {p.source.table} yet: nothing to "
                                f"reprocess (what it reads is its own); retry once its first batch has committed")
        source = read_static_source(spark, cfg.pipeline(name), version)
        if source_column is not None and start is not None:
            source = source.filter(F.col(source_column) >= _ts(start - margin))
        if source_column is not None and end is not None and source_column != ARRIVAL_TIME:
            source = source.filter(F.col(source_column) < _ts(end + margin))
        shown = version if version is not None else _version(spark, cfg.lake.table_path(p.source.table))
        report.source = f"{p.source.table} version {shown}"
        progress(f"reading {report.source} through {name}'s transforms and quality rules")
        replaced = predicate
        if version is not None and set(COORDS) <= set(source.columns):
            # Only the rows of the offsets read here: what the stream appends meanwhile (later
            # offsets) is neither recomputed nor replaced, whenever the overwrite commits.
            read = _coordinate_ranges(source)
            bound = _coordinate_predicate({k: (0, hi) for k, (_, hi) in read.items()}) or "false"
            replaced = f"({predicate}) AND ({bound})" if predicate else bound
        evaluated = build_checked_batch(spark, cfg.pipeline(name), source=source).filter(in_range).persist()
        try:
            live = spark.read.format("delta").load(path)
            new = with_rank(valid_rows(evaluated, drop_raw=qpath is not None), p.sink)
            new = new.select(*[c for c in live.columns if c in new.columns],
                             *[c for c in new.columns if c not in live.columns]).persist()
            try:
                old = live.filter(replaced) if replaced else live
                progress(f"comparing with {table} version {_version(spark, path)}")
                _diff(old, new, report)
                if qpath is not None:
                    report.quarantined = evaluated.filter(F.col(OUTCOME) == "quarantined").count()
                if dry_run:
                    return
                if not report.unchanged:
                    progress(f"replacing {report.before:,} rows with {report.after:,} ({report.added:,} new or changed, "
                             f"{report.removed:,} gone) in one commit")
                    ReplaceRange(path, replaced).write(new)
                    report.version = _version(spark, path)
                if qpath is not None and table_exists(spark, qpath):
                    QuarantineUpsert(qpath, name).write(quarantine_rows(evaluated, name))
                    delete_quarantined(qpath, name, new)
            finally:
                new.unpersist()
        finally:
            evaluated.unpersist()

    retry_on_conflict(attempt, what=f"reprocess of {table}")
    report.seconds = time.monotonic() - began
    return report


# -- full replay from Kafka ----------------------------------------------------------------

def chain_from_kafka(cfg: Config, name: str) -> list[str]:
    """The pipelines from the one reading Kafka down to ``name``, each the only writer of what the next reads."""
    chain = [name]
    while (source := cfg.pipelines[chain[0]].source).table is not None:
        chain.insert(0, writer_of(cfg, source.table))
    for n in chain:
        if cfg.pipelines[n].sink.mode != "append":
            raise ConfigError(f"--full replays Kafka into tables fed row by row (bronze, silver); "
                              f"{cfg.pipelines[name].sink.table} is keyed ({n} merges): reprocess it without "
                              f"--from/--to to rebuild all of it from {cfg.pipelines[name].source.table}")
    return chain


def side_config(cfg: Config, chain: list[str]) -> Config:
    """``cfg`` with ``<pipeline>__rebuild`` pipelines writing ``<table>__rebuild`` tables, reading
    the topic from the earliest retained offset, their quality metrics in a side table too, and
    no routes (a rebuild never writes to the live routes' tables and topics)."""
    pipelines, suites = {}, dict(cfg.quality.suites)
    for n in chain:
        pc = cfg.pipelines[n]
        if pc.source.table is not None:
            source = pc.source.model_copy(update={"table": pc.source.table + SIDE})
        else:
            source = pc.source.model_copy(update={"starting_offsets": "earliest"})
        quarantine = pc.sink.quarantine + SIDE if pc.sink.quarantine else None
        sink = pc.sink.model_copy(update={"table": pc.sink.table + SIDE, "quarantine": quarantine, "routes": []})
        pipelines[n + SIDE] = pc.model_copy(update={"source": source, "sink": sink,
                                                    "trigger": TriggerConf(available_now=True)})
        if pc.sink.table in suites:
            suites[pc.sink.table + SIDE] = suites[pc.sink.table]
    quality = cfg.quality.model_copy(update={"suites": suites, "metrics_table": cfg.quality.metrics_table + SIDE})
    return cfg.model_copy(update={"pipelines": pipelines, "quality": quality})


def _drop_side(spark: SparkSession, side: Config) -> None:
    for n, pc in side.pipelines.items():
        for t in filter(None, (pc.sink.table, pc.sink.quarantine)):
            delete_path(spark, side.lake.table_path(t))
        delete_path(spark, side.lake.checkpoint_path(n))
    delete_path(spark, side.lake.table_path(side.quality.metrics_table))


def processed_offsets(spark: SparkSession, cfg: Config, name: str) -> dict[tuple[str, int], int] | None:
    """Per (topic, partition), the highest Kafka offset whose record ``name``'s stream has processed
    (through the tables upstream of it); None when it never committed a batch."""
    p = cfg.pipelines[name]
    if p.source.topic is not None:
        nxt = kafka_next_offsets(spark, cfg.pipeline(name))
        return None if nxt is None else {k: v - 1 for k, v in nxt.items()}
    version = delta_source_version(spark, cfg.pipeline(name))
    if version is None:
        return None
    if version < 0:
        return {}
    rows = (read_static_source(spark, cfg.pipeline(name), version).groupBy("topic", "partition")
            .agg(F.max("offset").alias("hi")).collect())
    return {(r["topic"], r["partition"]): r["hi"] for r in rows}


def _coordinate_ranges(df: DataFrame) -> dict[tuple[str, int], tuple[int, int]]:
    rows = df.groupBy("topic", "partition").agg(F.min("offset").alias("lo"), F.max("offset").alias("hi")).collect()
    return {(r["topic"], r["partition"]): (r["lo"], r["hi"]) for r in rows}


def _coordinate_predicate(ranges: dict[tuple[str, int], tuple[int, int]]) -> str:
    return " OR ".join(f"(`topic` = '{t}' AND `partition` = {p} AND `offset` BETWEEN {lo} AND {hi})"
                       for (t, p), (lo, hi) in sorted(ranges.items()))


def reprocess_full(spark: SparkSession, cfg: Config, table: str, dry_run: bool = False, wait_s: float = 600.0,
                   progress: Progress = lambda _: None) -> ReprocessReport:
    """Rebuild ``table`` from the earliest offsets Kafka retains into a side table, then swap the
    rebuilt offsets' rows into the live table (see the module docstring)."""
    began = time.monotonic()
    name = writer_of(cfg, table)
    chain = chain_from_kafka(cfg, name)
    p = cfg.pipelines[name]
    path = cfg.lake.table_path(table)
    if not table_exists(spark, path) or processed_offsets(spark, cfg, name) is None:
        raise PipelineError(f"pipeline {name} has never committed a batch into {table}: there is nothing to swap "
                            f"into; run it (kappalake ingest --pipeline {name}) rather than a replay")
    side = side_config(cfg, chain)
    report = ReprocessReport(table, name, "")
    _drop_side(spark, side)  # an interrupted earlier rebuild starts over
    try:
        topic = cfg.topic_name(cfg.pipelines[chain[0]].source.topic)
        progress(f"replaying topic {topic} from its earliest retained offset through {' -> '.join(chain)} "
                 f"into side tables ({table}{SIDE})")
        run_pipelines(spark, side, list(side.pipelines), trigger=TriggerConf(available_now=True),
                      on_progress=lambda n, prog: progress(f"  [{n}] batch {prog['batchId']}: "
                                                           f"{prog.get('numInputRows', 0):,} rows")
                      if prog.get("numInputRows") else None)
        root = spark.read.format("delta").load(side.lake.table_path(side.pipelines[chain[0] + SIDE].sink.table))
        ranges = _coordinate_ranges(root)
        report.scope = "Kafka offsets " + ", ".join(f"{t}/{p} {lo}..{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))
        report.source = f"topic {topic} (earliest retained offsets)"
        if not ranges:
            report.notes.append("the topic holds no records: nothing to swap")
            return report
        _wait_for_live(spark, cfg, name, ranges, wait_s, progress)
        predicate = _coordinate_predicate(ranges)
        rebuilt = spark.read.format("delta").load(side.lake.table_path(table + SIDE))

        def swap() -> None:
            report.attempts += 1
            live = spark.read.format("delta").load(path)
            new = rebuilt.select(*[c for c in live.columns if c in rebuilt.columns],
                                 *[c for c in rebuilt.columns if c not in live.columns])
            progress(f"comparing the rebuilt rows with {table} version {_version(spark, path)}")
            _diff(live.filter(predicate), new, report)
            if dry_run or report.unchanged:
                return
            progress(f"swapping in {report.after:,} rows for {report.before:,} ({report.added:,} new or changed, "
                     f"{report.removed:,} gone) in one commit")
            ReplaceRange(path, predicate).write(new)
            report.version = _version(spark, path)

        retry_on_conflict(swap, what=f"swap into {table}")
        if p.sink.quarantine:
            qside = spark.read.format("delta").load(side.lake.table_path(p.sink.quarantine + SIDE))
            report.quarantined = qside.count()
            qpath = cfg.lake.table_path(p.sink.quarantine)
            if not dry_run and table_exists(spark, qpath):
                moved = qside.withColumn("pipeline", F.lit(name))
                where = f"`pipeline` = '{name}' AND ({predicate})"
                retry_on_conflict(lambda: ReplaceRange(qpath, where).write(moved),
                                  what=f"swap into {p.sink.quarantine}")
    finally:
        _drop_side(spark, side)
    report.seconds = time.monotonic() - began
    return report


def _wait_for_live(spark: SparkSession, cfg: Config, name: str, ranges: dict[tuple[str, int], tuple[int, int]],
                   wait_s: float, progress: Progress) -> None:
    """Block until ``name``'s live stream has processed every offset the rebuild read (so that it
    will not write any of them after the swap)."""
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        done = processed_offsets(spark, cfg, name) or {}
        behind = {k: (hi, done.get(k, -1)) for k, (_, hi) in ranges.items() if done.get(k, -1) < hi}
        if not behind:
            return
        if time.monotonic() > deadline:
            where = ", ".join(f"{t}/{p} at {d} of {hi}" for (t, p), (hi, d) in sorted(behind.items()))
            raise PipelineError(f"the live pipeline {name} has not reached the offsets the rebuild read ({where}) "
                                f"within {wait_s:.0f} s: start it (kappalake ingest --pipeline {name}) or pass a "
                                f"longer --wait; nothing was swapped")
        if not announced:
            progress(f"waiting for the live {name} stream to pass the rebuilt offsets")
            announced = True
        time.sleep(2)
