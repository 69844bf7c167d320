"""`kappalake verify`: does the lake hold exactly what Kafka accepted, once?

Checks, each a :class:`Check` with its figures:

- **bronze**: one row per record Kafka retains, read at the streams' isolation level (offsets
  of transaction markers and aborted records hold none), none missing, none duplicated;
- **silver**: every bronze row is in silver or quarantine (never both), or was dropped as an
  identical resend (same event_id, same bytes) of a record that is there; a resend with other
  content is in quarantine (``conflicting_resend``), never dropped; no event twice in silver;
  nothing in silver that bronze does not hold;
- **gold**: the table equals a batch recomputation from silver with the same code (a dry-run
  reprocess: nothing added, nothing removed);
- **route**: every row of a route table is a row its pipeline's table holds that the route
  takes, each once (a latest-state table: one row per key); rows written before the route was
  configured are not required (a route is not a backfill);
- **delta**: every version in the log is readable and references only files that exist.

Run it once the streams have caught up (e.g. after ``kappalake ingest --available-now``):
rows still in flight between layers would count as missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappalake.config import Config
from kappalake.ingest.kafka_clients import spark_kafka_options
from kappalake.lake.deltalog import scan_log
from kappalake.lake.files import hadoop_path
from kappalake.lake.tables import table_exists
from kappalake.pipelines.reprocess import reprocess_range
from kappalake.quality.quarantine import COORDS
from kappalake.transforms.dedup import CONFLICT


@dataclass
class Check:
    """One consistency check of one table: passed or not, why, and what was counted."""

    check: str
    table: str
    ok: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def kafka_records(spark: SparkSession, cfg: Config, topic: str) -> DataFrame:
    """``partition``, ``offset`` of every record Kafka holds for ``topic``, read as the streams
    read it (``kafka.isolation_level``): transaction markers hold no record, and under
    read_committed neither do aborted transactions' records, so offsets have gaps."""
    return (spark.read.format("kafka").options(**spark_kafka_options(cfg.kafka_settings))
            .options(**{"subscribe": topic, "startingOffsets": "earliest", "endingOffsets": "latest",
                        "failOnDataLoss": "false", "kafka.isolation.level": cfg.kafka.isolation_level})
            .load().select("partition", "offset"))


def check_bronze(spark: SparkSession, cfg: Config, pipeline: str) -> Check:
    """One row per record Kafka retains in the pipeline's topic: none missing, none duplicated,
    none that Kafka's readers do not see (an aborted transaction's record).

    When bronze holds every retained offset once, every offset is a record and the check is done;
    otherwise (transaction markers, a gap) Kafka's records are read and compared one by one."""
    from kappalake.ingest.topics import beginning_offsets, end_offsets

    p = cfg.pipelines[pipeline]
    table, topic = p.sink.table, cfg.topic_name(p.source.topic)
    df = spark.read.format("delta").load(cfg.lake.table_path(table)).filter(F.col("topic") == topic)
    begins, ends = beginning_offsets(cfg.kafka_settings, topic), end_offsets(cfg.kafka_settings, topic)
    # Offsets below the retained beginning may be in bronze (read before Kafka deleted them).
    begin = F.coalesce(F.create_map(*[F.lit(x) for q, b in begins.items() for x in (q, b)])[F.col("partition")]
                       if begins else F.lit(0), F.lit(0))
    per_part = {r["partition"]: (r["n"], r["d"], r["held"], r["last"]) for r in df.groupBy("partition").agg(
        F.count("*").alias("n"), F.count_distinct("offset").alias("d"),
        F.count_distinct(F.when(F.col("offset") >= begin, F.col("offset"))).alias("held"),
        F.max("offset").alias("last")).collect()}
    rows = sum(v[0] for v in per_part.values())
    duplicates = sum(v[0] - v[1] for v in per_part.values())
    complete = set(per_part) <= set(ends) and all(
        per_part.get(q, (0, 0, 0, -1))[2] == end - begins.get(q, 0) and per_part.get(q, (0, 0, 0, -1))[3] < end
        for q, end in ends.items())
    if complete and not duplicates:
        return Check("bronze", table, True, "one row per Kafka record",
                     {"kafka_records": sum(e - begins.get(q, 0) for q, e in ends.items()), "rows": rows, "duplicates": 0, "missing": 0, "not_in_kafka": 0})

    held = df.where(F.col("offset") >= begin).select("partition", "offset").distinct()
    records = kafka_records(spark, cfg, topic).withColumn("in_kafka", F.lit(True))
    both = (records.join(held.withColumn("in_bronze", F.lit(True)), ["partition", "offset"], "full_outer")
            .groupBy("partition").agg(F.count("in_kafka").alias("records"),
                                      F.count(F.when(F.col("in_bronze").isNull(), 1)).alias("missing"),
                                      F.count(F.when(F.col("in_kafka").isNull(), 1)).alias("unknown"),
                                      F.min("offset").alias("first"), F.max("offset").alias("last")))
    per_kafka = {r["partition"]: r for r in both.collect()}
    kafka = sum(r["records"] for r in per_kafka.values())
    missing = sum(r["missing"] for r in per_kafka.values())
    unknown = sum(r["unknown"] for r in per_kafka.values())
    gaps = [f"partition {part}: {r['records'] - r['missing']} of {r['records']} records in offsets "
            f"{r['first']}..{r['last']}" + (f", {r['unknown']} rows Kafka's readers do not see "
                                            f"({cfg.kafka.isolation_level}: an aborted transaction's)"
                                            if r["unknown"] else "")
            for part, r in sorted(per_kafka.items()) if r["missing"] or r["unknown"]]
    ok = duplicates == 0 and missing == 0 and unknown == 0
    detail = "one row per Kafka record" if ok else "; ".join(
        ([f"{duplicates} duplicated offsets"] if duplicates else []) + gaps)
    return Check("bronze", table, ok, detail, {"kafka_records": kafka, "rows": rows, "duplicates": duplicates,
                                               "missing": missing, "not_in_kafka": unknown})


def _event_ids(bronze: DataFrame) -> DataFrame:
    return bronze.select(*COORDS, F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id"),
                         F.xxhash64("value").alias("content"))


def check_silver(spark: SparkSession, cfg: Config, pipeline: str) -> Check:
    """Silver plus quarantine account for every row of the bronze table the pipeline reads."""
    p = cfg.pipelines[pipeline]
    table = p.sink.table
    read = lambda name: spark.read.format("delta").load(cfg.lake.table_path(name))  # noqa: E731
    bronze = _event_ids(read(p.source.table)).persist()
    silver = read(table).select(*COORDS, "event_id").persist()
    quarantined = (read(p.sink.quarantine).filter(F.col("pipeline") == pipeline) if p.sink.quarantine and
                   table_exists(spark, cfg.lake.table_path(p.sink.quarantine)) else None)
    quarantine = quarantined.select(*COORDS) if quarantined is not None else None
    try:
        landed = silver.select(*COORDS)
        if quarantine is not None:
            landed = landed.unionByName(quarantine)
        in_both = silver.join(quarantine, COORDS, "left_semi").count() if quarantine is not None else 0
        elsewhere = bronze.join(landed, COORDS, "left_anti").persist()
        # What a dropped row may be a copy of: a landed record's event id and payload.
        versions = bronze.join(landed, COORDS, "left_semi").select("event_id", "content").distinct()
        identical = elsewhere.join(versions, ["event_id", "content"], "left_semi")
        other = elsewhere.join(versions, ["event_id", "content"], "left_anti")
        resends = identical.count()
        conflicts_lost = other.join(versions.select("event_id").distinct(), "event_id", "left_semi").count()
        lost = elsewhere.count() - resends - conflicts_lost
        elsewhere.unpersist()
        conflicts = quarantined.filter(F.col("reason") == CONFLICT).count() if quarantined is not None else 0
        rows, q_rows, b_rows = silver.count(), quarantine.count() if quarantine is not None else 0, bronze.count()
        twice = rows - silver.select("event_id").distinct().count()
        phantom = landed.join(bronze, COORDS, "left_anti").count()
    finally:
        bronze.unpersist()
        silver.unpersist()
    figures = {"bronze_rows": b_rows, "rows": rows, "quarantined": q_rows, "conflicting_resends": conflicts,
               "resends_dropped": resends, "conflicts_dropped": conflicts_lost, "lost": lost,
               "duplicate_events": twice, "in_both": in_both, "not_in_bronze": phantom}
    problems = [f"{n} {what}" for n, what in ((lost, "bronze rows in neither silver nor quarantine"),
                                              (conflicts_lost, "resends with other content than the landed copy "
                                                               "in neither silver nor quarantine"),
                                              (twice, "events twice in silver"), (in_both, "rows in both"),
                                              (phantom, "rows bronze does not hold")) if n]
    detail = (f"{b_rows} bronze rows = {rows} in silver + {q_rows} quarantined ({conflicts} conflicting resends) + "
              f"{resends} identical resends dropped"
              if not problems else "; ".join(problems))
    return Check("silver", table, not problems, detail, figures)


def check_gold(spark: SparkSession, cfg: Config, pipeline: str) -> Check:
    """The table equals what its pipeline computes from its source in one batch (a dry-run
    reprocess). A table the stream appends to once a window closes may lack the windows still
    open; it must not hold anything the batch does not."""
    p = cfg.pipelines[pipeline]
    r = reprocess_range(spark, cfg, p.sink.table, dry_run=True)
    only_closed = p.sink.output_mode == "append"
    ok = r.removed == 0 and (r.added == 0 or only_closed)
    figures = {"rows": r.before, "batch_rows": r.after, "differ": r.removed, "batch_only": r.added}
    detail = (f"{r.before} rows = the batch recomputation from {p.source.table}" if ok and not r.added else
              f"{r.before} rows, all in the batch recomputation; {r.added} windows still open" if ok else
              f"{r.removed} rows differ from the batch recomputation from {p.source.table} "
              f"(which has {r.added} rows the table lacks)")
    return Check("gold", p.sink.table, ok, detail, figures)


def check_delta(spark: SparkSession, path: str, table: str) -> Check:
    """Every version in the table's log is readable and references only files that exist."""
    fs, root = hadoop_path(spark, path)
    present: set[str] = set()
    it = fs.listFiles(root, True)
    while it.hasNext():
        present.add(it.next().getPath().toUri().getPath())
    scan = scan_log(spark, path)
    versions, unreadable = scan.versions, scan.unreadable
    dangling = scan.referenced - present
    data = {f for f in present if "/_delta_log/" not in f and f.endswith(".parquet")}
    unreferenced = len(data - scan.referenced)
    figures = {"versions": len(versions), "unreadable": len(unreadable), "dangling": len(dangling),
               "files": len(present), "unreferenced": unreferenced}
    ok = not unreadable and not dangling
    detail = (f"{len(versions)} versions readable, every referenced file present "
              f"({unreferenced} unreferenced data files, for VACUUM)" if ok else
              "; ".join(unreadable[:3] + [f"{len(dangling)} referenced files missing, e.g. {sorted(dangling)[0]}"]
                        if dangling else unreadable[:3]))
    return Check("delta", table, ok, detail, figures)


def verify_lake(spark: SparkSession, cfg: Config, pipelines: list[str] | None = None,
                delta: bool = True) -> list[Check]:
    """All checks for ``pipelines`` (default: every configured pipeline whose table exists): bronze
    for those reading Kafka into Delta, silver for those with a quarantine, gold for merge sinks
    reading a table, and the Delta check for every table they write."""
    names = [n for n in (pipelines or cfg.pipelines) if cfg.pipelines[n].sink.table is not None
             and table_exists(spark, cfg.lake.table_path(cfg.pipelines[n].sink.table))]
    checks: list[Check] = []
    tables: list[str] = []
    for n in names:
        p = cfg.pipelines[n]
        if p.source.topic is not None:
            checks.append(check_bronze(spark, cfg, n))
        elif p.sink.quarantine:
            checks.append(check_silver(spark, cfg, n))
        elif p.sink.mode == "merge":
            checks.append(check_gold(spark, cfg, n))
        for i, r in enumerate(p.sink.routes):
            if r.table is not None and table_exists(spark, cfg.lake.table_path(r.table)):
                checks.append(check_route(spark, cfg, n, i))
        tables += [t for t in (p.sink.table, p.sink.quarantine, *[r.table for r in p.sink.routes]) if t and t not in tables]
    if delta:
        for t in tables:
            path = cfg.lake.table_path(t)
            if table_exists(spark, path):
                checks.append(check_delta(spark, path, t))
    return checks


def check_route(spark: SparkSession, cfg: Config, pipeline: str, index: int) -> Check:
    """A route table holds only rows its pipeline's table holds and the route takes, each once."""
    from kappalake.pipelines.routes import route_rows

    p = cfg.pipelines[pipeline]
    route = p.sink.routes[index]
    read = lambda name: spark.read.format("delta").load(cfg.lake.table_path(name))  # noqa: E731
    got = read(route.table)
    taken = route_rows(read(p.sink.table), route).select(*got.columns)
    rows = got.count()
    foreign = got.exceptAll(taken).count()  # a row twice in the table where its source holds it once counts too
    twice = rows - got.select(*route.keys).distinct().count() if route.mode == "merge" else 0
    problems = [f"{n} {what}" for n, what in ((foreign, f"rows {p.sink.table} does not hold (or not as often)"),
                                              (twice, f"keys {'/'.join(route.keys)} twice")) if n]
    detail = (f"{rows} rows, each from {p.sink.table} (routes[{index}] of {pipeline})" if not problems
              else "; ".join(problems))
    return Check("route", route.table, not problems, detail, {"rows": rows, "foreign": foreign, "keys_twice": twice})


def format_checks(checks: list[Check]) -> str:
    """The checks as an aligned table, one line each."""
    width = max([len(c.table) for c in checks] + [5])
    return "\n".join(f"{'ok' if c.ok else 'FAIL':<5}{c.check:<7}{c.table:<{width + 2}}{c.detail}" for c in checks)
