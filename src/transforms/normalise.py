"""Canonical silver shape: flat columns, blank text as null, UTC event date and hour."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from kappalake.transforms.parse import ERRORS

def normalise(df: DataFrame, time_column: str = "event_time") -> DataFrame:
    """Flatten structs (``geo.lat`` -> ``geo_lat``), trim text (blank -> null), add dates.

    Adds ``event_date`` and ``event_hour`` (UTC, from ``time_column``) and ``lateness_ms``
    (``sent_at`` minus event time: how late the client delivered it) and ``arrival_delay_ms``
    (Kafka's timestamp minus event time; negative when the event claims to come from the future).
    Works on any contract.
    """
    cols = []
    for field in df.schema.fields:
        name = field.name
        if field.dataType.typeName() == "struct" and not name.startswith("_") and name != "headers":
            cols += [_canonical(F.col(f"{name}.{sub.name}"), f"{name}_{sub.name}", sub.dataType.typeName())
                     for sub in field.dataType.fields]
        elif name.startswith("_") or name in ("key", "value", "headers"):
            cols.append(F.col(name))
        else:
            cols.append(_canonical(F.col(name), name, field.dataType.typeName()))
    out = df.select(*cols)
    t = F.col(time_column)
    out = out.withColumn("event_date", F.to_date(t)).withColumn("event_hour", F.date_trunc("hour", t))
    if "sent_at" in out.columns:
        out = out.withColumn("lateness_ms", F.expr(f"timestampdiff(MILLISECOND, {time_column}, sent_at)"))
    if "kafka_timestamp" in out.columns:  # negative: the event claims a time after Kafka received it
        out = out.withColumn("arrival_delay_ms", F.expr(f"timestampdiff(MILLISECOND, {time_column}, kafka_timestamp)"))
    if ERRORS in out.columns:  # keep the error list last, next to the raw payload it explains
        out = out.select(*[c for c in out.columns if c != ERRORS], ERRORS)
    return out


def _canonical(col, name: str, type_name: str):
    if type_name != "string":
        return col.alias(name)
    trimmed = F.trim(col)
    return F.when(trimmed != "", trimmed).alias(name)
