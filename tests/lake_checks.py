"""Assertions about what landed in bronze, shared by the integration tests."""

from __future__ import annotations

from pyspark.sql import functions as F

from kappalake.config import Config
from kappalake.ingest.topics import end_offsets


def bronze(spark, cfg: Config, topic: str = "clickstream"):
    return spark.read.format("delta").load(cfg.lake.table_path(f"bronze.{topic}"))


def assert_exactly_once(spark, cfg: Config, topic: str, expected: int) -> None:
    """Bronze holds exactly one row per Kafka offset: none missing, none duplicated."""
    df = bronze(spark, cfg, topic)
    rows = df.count()
    coords = df.select("topic", "partition", "offset").distinct().count()
    per_part = {r["partition"]: (r["n"], r["lo"], r["hi"]) for r in
                df.groupBy("partition").agg(F.count("*").alias("n"), F.min("offset").alias("lo"),
                                            F.max("offset").alias("hi")).collect()}
    ends = end_offsets(cfg, cfg.topic_name(topic))
    assert rows == expected, f"bronze.{topic} has {rows} rows, expected {expected}"
    assert coords == rows, f"bronze.{topic} has {rows - coords} duplicated Kafka offsets"
    for part, end in ends.items():
        n, lo, hi = per_part.get(part, (0, None, None))
        if end:
            assert (n, lo, hi) == (end, 0, end - 1), f"partition {part}: {n} rows over offsets {lo}..{hi}, Kafka end {end}"
