"""Assertions about what landed in bronze, shared by the integration tests."""

from __future__ import annotations

from pyspark.sql import functions as F

from kappalake.config import Config
from kappalake.ingest.topics import end_offsets


def bronze(spark, cfg: Config, topic: str = "clickstream"):
    return spark.read.format("delta").load(cfg.lake.table_path(f"bronze.{topic}"))


def table(spark, cfg: Config, name: str):
    """The Delta table ``name`` (e.g. ``silver.clickstream``) of ``cfg``'s lake."""
    return spark.read.format("delta").load(cfg.lake.table_path(name))


def header(name: str):
    """The value of the Kafka header ``name`` of a bronze row, as text (null when absent)."""
    return F.expr(f"cast(get(filter(headers, h -> h.key = '{name}'), 0).value as string)")


def assert_exactly_once(spark, cfg: Config, topic: str, expected: int) -> None:
    """Bronze holds exactly one row per Kafka offset: none missing, none duplicated."""
    df = bronze(spark, cfg, topic)
    rows = df.count()
    coords = df.select("topic", "partition", "offset").distinct().count()
    per_part = {r["partition"]: (r["n"], r["lo"], r["hi"]) for r in
                df.groupBy("partition").agg(F.count("*").alias("n"), F.min("offset").alias("lo"),
                                            F.max("offset").alias("hi")).collect()}
    ends = end_offsets(cfg.kafka_settings, cfg.topic_name(topic))
    assert rows == expected, f"bronze.{topic} has {rows} rows, expected {expected}"
    assert coords == rows, f"bronze.{topic} has {rows - coords} duplicated Kafka offsets"
    for part, end in ends.items():
        n, lo, hi = per_part.get(part, (0, None, None))
        if end:
            assert (n, lo, hi) == (end, 0, end - 1), f"partition {part}: {n} rows over offsets {lo}..{hi}, Kafka end {end}"


# A resent event's copies differ only in where and when they arrived. The stream keeps the first
# copy it sees; when both copies reach it in one micro-batch that may be either, while a batch
# keeps the earliest offset. Comparisons of stream and batch results allow for that.
ARRIVAL = ("topic", "partition", "offset", "kafka_timestamp", "arrival_delay_ms")


def event_rows(df):
    """``df`` without the columns that differ between copies of a resent event."""
    return df.drop(*[c for c in ARRIVAL if c in df.columns])


def later_copies(spark, cfg: Config, silver, topic: str = "clickstream") -> int:
    """How many of ``silver``'s rows are a later copy of an event bronze holds an earlier copy of
    (what a batch rebuild replaces by the earliest copy)."""
    b = bronze(spark, cfg, topic).select(
        F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id"),
        F.struct("kafka_timestamp", "partition", "offset").alias("at"))
    first = b.groupBy("event_id").agg(F.min("at").alias("first"))
    kept = silver.select("event_id", F.struct("kafka_timestamp", "partition", "offset").alias("at"))
    return kept.join(first, "event_id").filter(F.col("at") != F.col("first")).count()
