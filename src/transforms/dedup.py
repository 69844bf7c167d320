"""Deduplication on an event id within a watermark: bounded state, nothing late dropped."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import Window
from pyspark.sql import functions as F

from kappalake.transforms.parse import ERRORS, is_valid

_KEY = "_dedup_key"


def dedup(df: DataFrame, key: str = "event_id", time_column: str = "kafka_timestamp", delay: str = "10 minutes") -> DataFrame:
    """Drop repeats of ``key`` that arrive within ``delay`` of each other, keeping one copy.

    Streaming: ``withWatermark`` + ``dropDuplicatesWithinWatermark`` keeps a key in state only
    until the watermark passes it, so state stays bounded. The first copy the stream sees wins:
    across micro-batches the first arrival, within one micro-batch either copy (Spark reads a
    batch's files in size order, not offset order); the copies differ only in their Kafka
    coordinates and timestamp. The default clock is the Kafka timestamp (arrival), not the
    event time: a resend arrives soon after the original whatever its event time, and a late
    event (old event time) is kept rather than dropped as late. Batch: every repeat is
    dropped, keeping the earliest arrival. Rows with parse errors get a key of their own
    (their Kafka coordinates), so they are never merged and go on to quarantine.
    """
    k = F.col(key)
    if ERRORS in df.columns:
        k = F.when(is_valid() & k.isNotNull(), k).otherwise(
            F.concat_ws("/", F.lit("row"), F.col("topic"), F.col("partition").cast("string"), F.col("offset").cast("string")))
    df = df.withColumn(_KEY, k)
    if df.isStreaming:
        out = df.withWatermark(time_column, delay).dropDuplicatesWithinWatermark([_KEY]).drop(_KEY)
        # The watermark marks its column in the schema; tables downstream need not inherit it.
        return out.withColumn(time_column, F.col(time_column).cast("timestamp"))
    # Batch (reprocessing): keep the first arrival, as the stream does.
    order = [F.col(time_column)] + [F.col(c) for c in ("partition", "offset") if c in df.columns]
    first = F.row_number().over(Window.partitionBy(_KEY).orderBy(*order))
    return df.withColumn("_dedup_rank", first).filter("_dedup_rank = 1").drop(_KEY, "_dedup_rank")
