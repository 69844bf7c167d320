"""Deduplication on an event id within a watermark: identical resends dropped, conflicting ones
flagged, bounded state, nothing late dropped.

A *resend* is a record whose event id was seen before. When its payload is byte for byte the
one seen (a producer retry, a replayed file), it is dropped. When the payload differs (same
id, other content) it is a *conflicting resend*: the first copy stays the event, and this one
gets the error code ``conflicting_resend``, so the quality gate quarantines it with its raw
payload and Kafka coordinates instead of letting it vanish.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from kappalake.transforms.parse import ERRORS, is_valid

CONFLICT = "conflicting_resend"
_KEY = "_dedup_key"      # the event id (its Kafka coordinates for a row with errors: never merged)
_FIRST = "_dedup_first"  # stream only: the marker row of an event's first arrival
_SEQ = "_dedup_seq"      # stream only: arrival order (time, partition, offset)
_ON = "_dedup_on"
MARKERS = [_KEY, _FIRST, _SEQ]


def dedup(df: DataFrame, key: str = "event_id", time_column: str = "kafka_timestamp", delay: str = "10 minutes",
          content: str = "value") -> DataFrame:
    """Drop identical repeats of ``key`` arriving within ``delay`` of each other; flag different ones.

    Two records with the same ``key`` are identical when their ``content`` column (the raw Kafka
    value) is equal, compared by its 64-bit xxhash. Of identical copies one is kept; a copy with
    other content is kept with ``conflicting_resend`` appended to ``_errors`` (for the quarantine),
    and the first arrival by (``time_column``, partition, offset) is the event. Without an
    ``_errors`` or ``content`` column every repeat is dropped.

    The clock is the Kafka timestamp (arrival), not the event time: a resend arrives soon after the
    original whatever its event time, and a late event is kept rather than dropped as late.
    Streaming: one ``dropDuplicatesWithinWatermark`` (state bounded by the watermark) sees each row
    twice, keyed by its content (drops identical copies) and, as a narrow marker, by its event id
    (passes only on the event's first arrival); :func:`settle` turns each micro-batch into the
    batch result, so the transform must be the pipeline's last. Batch: the same verdicts by rank.
    """
    k = F.col(key)
    flag = ERRORS in df.columns and content in df.columns
    if ERRORS in df.columns:
        k = F.when(is_valid() & k.isNotNull(), k).otherwise(
            F.concat_ws("/", F.lit("row"), F.col("topic"), F.col("partition").cast("string"), F.col("offset").cast("string")))
    df = df.withColumn(_KEY, k)
    order = [F.col(time_column)] + [F.col(c) for c in ("partition", "offset") if c in df.columns]
    version = F.concat_ws("#", F.col(_KEY), F.xxhash64(content).cast("string")) if flag else F.col(_KEY)
    if df.isStreaming and not flag:
        out = df.withWatermark(time_column, delay).dropDuplicatesWithinWatermark([_KEY]).drop(_KEY)
        # The watermark marks its column in the schema; tables downstream need not inherit it.
        return out.withColumn(time_column, F.col(time_column).cast("timestamp"))
    if df.isStreaming:
        cols = df.columns
        row = F.struct(F.lit(False).alias(_FIRST), F.struct(*order).alias(_SEQ), version.alias(_ON), *cols)
        kept = {_KEY, time_column}
        marker = F.struct(F.lit(True).alias(_FIRST), F.struct(*order).alias(_SEQ), F.col(_KEY).alias(_ON),
                          *[F.col(c) if c in kept else F.lit(None).cast(df.schema[c].dataType).alias(c) for c in cols])
        out = (df.select(F.explode(F.array(row, marker)).alias("_d")).select("_d.*")
               .withWatermark(time_column, delay).dropDuplicatesWithinWatermark([_ON]).drop(_ON))
        return out.withColumn(time_column, F.col(time_column).cast("timestamp"))
    if not flag:
        first = F.row_number().over(Window.partitionBy(_KEY).orderBy(*order))
        return df.withColumn("_rank", first).filter("_rank = 1").drop(_KEY, "_rank")
    # Batch: the first copy of each content, then the first content of each event.
    df = df.withColumn(_ON, version)
    by_content = Window.partitionBy(_KEY).orderBy(F.col(_ON), *order)
    copy = F.lag(_ON).over(by_content).eqNullSafe(F.col(_ON))
    rank = F.row_number().over(Window.partitionBy(_KEY).orderBy(*order))
    return (df.withColumn("_copy", copy).filter(~F.col("_copy")).withColumn("_rank", rank)
            .withColumn(ERRORS, _flagged(F.col("_rank") > 1)).drop(_KEY, _ON, "_copy", "_rank"))


def settle(df: DataFrame) -> DataFrame:
    """One micro-batch of a streaming :func:`dedup` as the batch result: markers gone, and the
    rows of events first seen in an earlier batch, or not first in this one, flagged
    ``conflicting_resend``. A frame without markers is returned as it is."""
    if _FIRST not in df.columns:
        return df
    w = Window.partitionBy(_KEY).orderBy(F.col(_FIRST).desc(), F.col(_SEQ))
    pos = F.row_number().over(w)
    marked = F.first(_FIRST).over(w)  # the event's marker is in this batch: it arrived first here
    out = df.withColumn("_pos", pos).withColumn("_marked", marked).filter(~F.col(_FIRST))
    return out.withColumn(ERRORS, _flagged(~F.col("_marked") | (F.col("_pos") > 2))).drop(*MARKERS, "_pos", "_marked")


def _flagged(conflict: Column) -> Column:
    return F.when(conflict, F.concat(F.col(ERRORS), F.array(F.lit(CONFLICT)))).otherwise(F.col(ERRORS))
