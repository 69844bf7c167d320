"""bronze_record maps Spark's Kafka source schema to the bronze schema, on static data."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import (ArrayType, BinaryType, IntegerType, LongType, StringType, StructField, StructType,
                               TimestampType)

from kappalake.transforms.bronze import BRONZE_COLUMNS, bronze_record

KAFKA_SCHEMA = StructType([
    StructField("key", BinaryType()),
    StructField("value", BinaryType()),
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("timestamp", TimestampType()),
    StructField("timestampType", IntegerType()),
    StructField("headers", ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())]))),
])


def kafka_rows(spark, rows):
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def test_keeps_raw_bytes_coordinates_and_derives_utc_date(spark):
    ts = dt.datetime(2026, 3, 29, 23, 59, 59, 999000)  # session time zone is UTC: stays on the 29th
    src = kafka_rows(spark, [
        (b"u1", b'{"a":1}', "clickstream", 2, 41, ts, 0, [("trace", b"abc")]),
        (None, b"\xff\xfe not json", "clickstream", 0, 7, ts, 1, None),
        (b"u3", None, "clickstream", 1, 0, None, 0, []),
    ])
    out = bronze_record(src)
    assert out.columns == BRONZE_COLUMNS
    expected = spark.createDataFrame(
        [
            (b"u1", b'{"a":1}', "clickstream", 2, 41, ts, 0, [("trace", b"abc")], dt.date(2026, 3, 29)),
            (None, b"\xff\xfe not json", "clickstream", 0, 7, ts, 1, None, dt.date(2026, 3, 29)),
            (b"u3", None, "clickstream", 1, 0, None, 0, [], None),
        ],
        StructType([*[f for f in KAFKA_SCHEMA.fields if f.name != "timestamp" and f.name != "timestampType"
                      and f.name != "headers"],
                    StructField("kafka_timestamp", TimestampType()), StructField("kafka_timestamp_type", IntegerType()),
                    KAFKA_SCHEMA["headers"], StructField("kafka_date", out.schema["kafka_date"].dataType)]),
    )
    assert_df_equality(out.drop("ingested_at"), expected, ignore_row_order=True, ignore_nullable=True)
    assert out.filter(F.col("ingested_at").isNull()).count() == 0


def test_missing_headers_column_becomes_typed_null(spark):
    src = kafka_rows(spark, [(b"k", b"v", "t", 0, 1, dt.datetime(2026, 1, 1), 0, None)]).drop("headers")
    out = bronze_record(src)
    assert out.schema["headers"].dataType == KAFKA_SCHEMA["headers"].dataType
    assert out.first()["headers"] is None


def test_works_on_a_streaming_dataframe(spark):
    stream = spark.readStream.format("rate").option("rowsPerSecond", 1).load().select(
        F.col("value").cast("string").cast("binary").alias("key"),
        F.col("value").cast("string").cast("binary").alias("value"),
        F.lit("t").alias("topic"), F.lit(0).alias("partition"), F.col("value").alias("offset"),
        F.col("timestamp"), F.lit(0).alias("timestampType"),
    )
    out = bronze_record(stream)
    assert out.isStreaming and out.columns == BRONZE_COLUMNS
