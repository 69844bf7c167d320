"""The quality-metrics table: one row per micro-batch and table (the pipeline writes it with the batch)."""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql.types import (DateType, LongType, MapType, StringType, StructField, StructType,
                               TimestampType)

from kappalake.quality.gate import BatchQuality

SCHEMA = StructType([
    StructField("pipeline", StringType()),
    StructField("table", StringType()),
    StructField("batch_id", LongType()),
    StructField("recorded_at", TimestampType()),
    StructField("rows_in", LongType()),
    StructField("passed", LongType()),      # kept without any failed rule
    StructField("warned", LongType()),      # kept, with failed warn (or tolerated fail) rules
    StructField("dropped", LongType()),
    StructField("quarantined", LongType()),
    StructField("rule_failures", MapType(StringType(), LongType())),  # rule or contract code -> rows
    StructField("recorded_date", DateType()),
])
PARTITION_BY = ["recorded_date"]


def metrics_row(pipeline: str, table: str, batch_id: int, quality: BatchQuality) -> tuple:
    """The batch's counts as one row of :data:`SCHEMA`."""
    now = datetime.now(timezone.utc)  # aware: PySpark would read a naive one in the local zone
    return (pipeline, table, batch_id, now, quality.rows_in, quality.count("passed"), quality.count("warned"),
            quality.count("dropped"), quality.count("quarantined"), dict(quality.rule_failures), now.date())
