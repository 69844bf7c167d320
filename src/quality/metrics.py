"""The quality-metrics table: one row per micro-batch and table, written with the batch."""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql.types import (DateType, LongType, MapType, StringType, StructField, StructType,
                               TimestampType)

from kappalake.lake.writers import append_idempotent
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


def write_metrics(spark: SparkSession, path: str, pipeline: str, table: str, batch_id: int,
                  quality: BatchQuality, app_id: str) -> None:
    """Append the batch's counts once per (app_id, batch_id): a replayed batch adds nothing."""
    now = datetime.now(timezone.utc)  # aware: PySpark would read a naive one in the local zone
    row = (pipeline, table, batch_id, now, quality.rows_in, quality.count("passed"), quality.count("warned"),
           quality.count("dropped"), quality.count("quarantined"), dict(quality.rule_failures), now.date())
    append_idempotent(spark.createDataFrame([row], SCHEMA), path, app_id=f"{app_id}/quality", version=batch_id)
