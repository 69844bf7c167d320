"""Event-time windows shared by the gold aggregates.

Every gold aggregate sets a watermark on ``event_time`` (its lateness allowance): on a
stream, an event older than the newest event seen minus that allowance no longer changes
a window (Spark drops it and counts it in ``numRowsDroppedByWatermark``; it stays in
silver, and a batch re-run over silver counts it), and windows older than that are
dropped from the state. On a static DataFrame the watermark is a no-op, so the same
function gives the batch answer. Windows are UTC (``spark.sql.session.timeZone``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

TIME = "event_time"


def watermarked(df: DataFrame, lateness: str) -> DataFrame:
    """``df`` with its lateness allowance on ``event_time`` (no-op on a static DataFrame)."""
    return df.withWatermark(TIME, lateness)


def window_bounds(column: str = "window") -> list[Column]:
    """``window_start`` and ``window_end`` from a window struct column."""
    return [F.col(f"{column}.start").alias("window_start"), F.col(f"{column}.end").alias("window_end")]


def count_where(cond: Column) -> Column:
    """Number of rows where ``cond`` holds (0, never null)."""
    return F.count(F.when(cond, True))


def sum_where(column: str, cond: Column) -> Column:
    """Sum of ``column`` over the rows where ``cond`` holds (0, never null)."""
    return F.coalesce(F.sum(F.when(cond, F.col(column))), F.lit(0))


def distinct_where(column: str, cond: Column | None = None) -> Column:
    """Exact number of distinct non-null ``column`` values (where ``cond`` holds).

    ``size(collect_set)`` rather than an approximate sketch: per window the sets are small,
    and exact counts let a batch re-run reproduce the stream exactly.
    """
    value = F.col(column) if cond is None else F.when(cond, F.col(column))
    return F.size(F.collect_set(value))


def ratio(numerator: Column, denominator: Column, digits: int = 4) -> Column:
    """``numerator / denominator`` as a double rounded to ``digits``, null when the denominator is 0."""
    return F.round(F.when(denominator != 0, numerator / denominator).cast("double"), digits)


_UNITS = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def interval_seconds(interval: str) -> float:
    """Seconds in an interval string such as ``'15 minutes'`` or ``'1 hour'``."""
    try:
        number, unit = interval.split()
        return float(number) * _UNITS[unit.lower().rstrip("s")]
    except (ValueError, KeyError):
        raise ValueError(f"interval {interval!r} must look like '30 seconds', '15 minutes' or '1 hour'") from None
