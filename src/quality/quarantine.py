"""The valid/quarantine split: rows with problems go to a quarantine table, never vanish.

A quarantine row keeps what is needed to understand and replay it: every rule it failed
(parser/contract codes and expectation names), a readable error text, the stage that
rejected it, the raw payload (bytes and text), key, headers, Kafka coordinates and pipeline.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from kappalake.quality.gate import DETAILS, FAILED, OUTCOME, QUALITY_COLUMNS
from kappalake.transforms.dedup import CONFLICT
from kappalake.transforms.parse import ERRORS, is_valid

RAW_ONLY = ["key", "value", "headers", ERRORS]
PAYLOAD_CODES = ("tombstone", "not_utf8", "oversized", "malformed_json", "not_an_object")
_CODE_TEXT = {
    "tombstone": "Kafka record without a value (a tombstone), not an event",
    "not_utf8": "payload is not valid UTF-8",
    "oversized": "payload is larger than the contract's size limit",
    "malformed_json": "payload is not valid JSON",
    "not_an_object": "payload is JSON but not an object",
    CONFLICT: "an earlier record has this event_id with other content (that one is the event; this one is kept here)",
}
_FIELD_TEXT = {
    "missing": "required field missing or null",
    "wrong_type": "wrong JSON type",
    "pattern": "does not match the contract's pattern",
    "format": "not a valid date-time",
    "enum": "not one of the contract's values",
    "range": "outside the contract's range",
    "precision": "more decimals than the contract's type holds",
}


def valid_rows(df: DataFrame, drop_raw: bool = True) -> DataFrame:
    """Rows to keep (passed or warned; without a gate: no contract errors) without the gate's
    columns and, with ``drop_raw``, without the raw payload and the error list."""
    if OUTCOME in df.columns:
        keep = F.col(OUTCOME).isin("passed", "warned")
    else:
        keep = is_valid() if ERRORS in df.columns else F.lit(True)
    return df.filter(keep).drop(*[c for c in (RAW_ONLY if drop_raw else []) + QUALITY_COLUMNS if c in df.columns])


def quarantine_rows(df: DataFrame, pipeline: str) -> DataFrame:
    """Quarantined rows of a batch judged by the quality gate, in the quarantine schema."""
    bad = df.filter(F.col(OUTCOME) == "quarantined")
    errors = F.col(FAILED)
    reason = errors.getItem(0)
    stage = (F.when(reason.isin(*PAYLOAD_CODES), "parse").when(reason == CONFLICT, "dedup")
             .when(F.size(ERRORS) > 0, "contract").otherwise("expectations"))
    return bad.select(
        F.lit(pipeline).alias("pipeline"),
        stage.alias("stage"),
        reason.alias("reason"),
        errors.alias("errors"),
        F.concat_ws("; ", F.concat(F.transform(F.col(ERRORS), describe_code), F.col(DETAILS))).alias("error_text"),
        F.col("topic"), F.col("partition"), F.col("offset"), F.col("kafka_timestamp"),
        # Text columns hold valid UTF-8 for every reader (pyarrow, DuckDB): bytes that are not are
        # replaced by U+FFFD there, and kept exactly in ``payload``.
        F.make_valid_utf8(F.col("key").cast("string")).alias("key"),
        F.col("value").alias("payload"),
        F.make_valid_utf8(F.col("value").cast("string")).alias("payload_text"),
        F.col("headers"),
        F.current_timestamp().alias("quarantined_at"),
        F.to_date("kafka_timestamp").alias("kafka_date"),
    )


def describe_code(code: Column) -> Column:
    """A parser/contract code (``missing:geo.lat``) as text (``geo.lat: required field missing or null``)."""
    kind, field = F.substring_index(code, ":", 1), F.substring_index(code, ":", -1)
    text = F.lit(None).cast("string")
    for c, t in _CODE_TEXT.items():
        text = F.when(code == c, F.lit(t)).otherwise(text)
    for k, t in _FIELD_TEXT.items():
        text = F.when(kind == k, F.concat(field, F.lit(f": {t}"))).otherwise(text)
    text = F.when(kind == "version", F.concat(F.lit("unsupported schema_version "), field)).otherwise(text)
    return F.coalesce(text, code)


COORDS = ["topic", "partition", "offset"]
REASONS = ["stage", "reason", "errors", "error_text"]  # what a re-judged record's new verdict replaces


def same_record(pipeline: str) -> str:
    """MERGE condition: the quarantine row ``t`` of ``pipeline`` at the Kafka coordinates of ``s``."""
    return " AND ".join([f"t.pipeline = '{pipeline}'"] + [f"t.`{c}` = s.`{c}`" for c in COORDS])
