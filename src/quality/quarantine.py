"""The valid/quarantine split: rows with problems go to a quarantine table, never vanish.

A quarantine row keeps what is needed to understand and replay it: the reasons, the raw
payload (bytes and text), key, headers and Kafka coordinates, and which pipeline sent it.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from kappalake.transforms.parse import ERRORS, is_valid

RAW_ONLY = ["key", "value", "headers", ERRORS]


def valid_rows(df: DataFrame) -> DataFrame:
    """Rows without problems, minus the raw payload and the error list."""
    return df.filter(is_valid()).drop(*[c for c in RAW_ONLY if c in df.columns])


def quarantine_rows(df: DataFrame, pipeline: str) -> DataFrame:
    """Rows with problems in the quarantine schema."""
    bad = df.filter(~is_valid())
    return bad.select(
        F.lit(pipeline).alias("pipeline"),
        F.col(ERRORS).getItem(0).alias("reason"),
        F.col(ERRORS).alias("errors"),
        F.col("topic"), F.col("partition"), F.col("offset"), F.col("kafka_timestamp"),
        F.col("key").cast("string").alias("key"),
        F.col("value").alias("payload"),
        F.col("value").cast("string").alias("payload_text"),
        F.col("headers"),
        F.current_timestamp().alias("quarantined_at"),
        F.to_date("kafka_timestamp").alias("kafka_date"),
    )
