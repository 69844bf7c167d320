"""What the streams are doing, read from the lake itself: commit rates per table and Kafka lag.

Both come from durable state (Delta commit history, query checkpoints, Kafka's end offsets),
so they work from any process, e.g. a notebook watching the demo run.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.config import Config
from kappalake.lake.tables import table_exists
from kappalake.monitoring.lag import lag_rows
from kappalake.pipelines.reprocess import processed_offsets


def commits(spark: SparkSession, cfg: Config, tables: list[str] | None = None, limit: int = 200) -> pd.DataFrame:
    """The latest ``limit`` commits of each table: table, version, timestamp, operation, rows written."""
    frames = []
    for table in tables or cfg.tables():
        path = cfg.lake.table_path(table)
        if not table_exists(spark, path):
            continue
        h = (DeltaTable.forPath(spark, path).history(limit)
             .select(F.lit(table).alias("table"), "version", "timestamp", "operation",
                     F.coalesce(F.col("operationMetrics")["numOutputRows"].cast("long"), F.lit(0)).alias("rows")))
        frames.append(h.toPandas())
    columns = ["table", "version", "timestamp", "operation", "rows"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def commit_rates(history: pd.DataFrame, freq: str = "10s") -> pd.DataFrame:
    """Rows written per second per table, in ``freq`` buckets of commit time (columns: tables)."""
    if history.empty:
        return pd.DataFrame()
    per = (history.assign(bucket=pd.to_datetime(history["timestamp"]).dt.floor(freq))
           .groupby(["bucket", "table"])["rows"].sum().unstack(fill_value=0))
    return per / pd.Timedelta(freq).total_seconds()


def kafka_lag(spark: SparkSession, cfg: Config) -> pd.DataFrame:
    """Per pipeline reading Kafka or the raw table of a topic (bronze) and partition: the topic's end
    offset, the offsets the pipeline has processed, and the lag between them (records not yet
    processed). Pipelines further down have no Kafka offsets of their own (rows are filtered on
    the way); their backlog is their source table's newer versions."""
    committed: dict[str, dict[tuple[str, int], int]] = {}
    topics: dict[str, set[str]] = {}
    raw = {n for n, p in cfg.pipelines.items() if p.source.topic is not None}
    for name, p in cfg.pipelines.items():
        feeds = [n for n in raw if cfg.pipelines[n].sink.table == p.source.table]
        if p.sink.table is None or (name not in raw and not feeds):
            continue
        try:
            done = processed_offsets(spark, cfg, name)
        except Exception:  # noqa: BLE001 - mid-version or unreadable checkpoint: no figure this time
            continue
        if done is None:
            continue
        committed[name] = {k: o + 1 for k, o in done.items()}  # next offsets to read
        if not done and p.source.topic:
            topics[name] = {cfg.topic_name(p.source.topic)}
    now = datetime.now()
    rows = [{"pipeline": r["pipeline"], "topic": r["topic"], "partition": r["partition"], "end_offset": r["end_offset"],
             "processed": r["committed_offset"], "lag": r["lag"], "at": now} for r in lag_rows(cfg.kafka_settings, committed, topics)]
    return pd.DataFrame(rows, columns=["pipeline", "topic", "partition", "end_offset", "processed", "lag", "at"])
