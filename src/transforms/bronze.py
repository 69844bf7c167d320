"""Bronze: the raw Kafka record with its coordinates, nothing parsed, nothing dropped."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, StringType, StructField, StructType

HEADERS_TYPE = ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())]))

BRONZE_COLUMNS = [
    "key", "value", "topic", "partition", "offset", "kafka_timestamp", "kafka_timestamp_type",
    "headers", "ingested_at", "kafka_date",
]


def bronze_record(kafka_df: DataFrame) -> DataFrame:
    """Map rows of Spark's Kafka source schema to the bronze schema.

    Keeps key and value as bytes (parsing is silver's job, so a bad payload can never stop
    ingestion), the Kafka coordinates (topic, partition, offset) that make every row
    traceable and unique, the Kafka timestamp, headers, the ingestion time and a UTC date
    partition derived from the Kafka timestamp (stable under replay, unlike ingestion time).
    """
    headers: Column = (
        F.col("headers").cast(HEADERS_TYPE) if "headers" in kafka_df.columns else F.lit(None).cast(HEADERS_TYPE)
    )
    return kafka_df.select(
        F.col("key").cast("binary").alias("key"),
        F.col("value").cast("binary").alias("value"),
        F.col("topic").cast("string").alias("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").cast("timestamp").alias("kafka_timestamp"),
        F.col("timestampType").cast("int").alias("kafka_timestamp_type"),
        headers.alias("headers"),
        F.current_timestamp().alias("ingested_at"),
        F.to_date(F.col("timestamp")).alias("kafka_date"),
    )
