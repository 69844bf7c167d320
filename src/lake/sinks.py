"""The writer of a pipeline's Delta sink (:func:`sink_writer`), the same for streams and batch jobs.

- ``append``: :class:`~kappalake.lake.writers.Append`, carrying ``txnAppId``/``txnVersion``; a
  replayed batch is skipped.
- ``merge``: :class:`Merge`, a MERGE on the sink keys (null-safe), inserting new rows and rewriting changed
  ones. Streaming aggregations run in update mode, so a batch carries the complete current
  totals of every window it touched: replaying it writes the same values (idempotent by
  construction). With ``rank``, the rows sharing ``within`` with any merged row are re-ranked.
  A MERGE that meets a concurrent commit (a reprocess replacing a range) is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StructField, StructType, TimestampType

from kappalake.config import RankConf, SinkConf
from kappalake.lake.writers import Append, Txn, Writer, retry_on_conflict


def table_schema(rows: StructType, sink: SinkConf) -> StructType:
    """The sink table's schema for rows of schema ``rows``: plus the rank column, if any."""
    if sink.rank is None:
        return rows
    return StructType(rows.fields + [StructField(sink.rank.column, IntegerType())])


def sink_writer(sink: SinkConf, path: str) -> Writer:
    """The writer of a pipeline's sink: :class:`~kappalake.lake.writers.Append` or :class:`Merge`."""
    return Append(path) if sink.mode == "append" else Merge(path, tuple(sink.keys), sink.rank)


@dataclass(frozen=True)
class Merge:
    """MERGE on ``keys``, then re-rank the groups touched (with ``rank``); a batch carries complete
    values, so a replay writes the same ones. Retried when a concurrent commit conflicts."""

    path: str
    keys: tuple[str, ...]
    rank: RankConf | None = None
    latest_by: str | None = None  # a latest-state table: the newest row per key by this column wins

    def write(self, rows: DataFrame, txn: Txn | None = None) -> None:
        # Persisted: the time range, the MERGE (which reads its source twice) and the re-rank
        # each read the batch; an empty batch changes nothing and is skipped.
        keys, rank = list(self.keys), self.rank
        batch = (latest_rows(rows, keys, self.latest_by) if self.latest_by else rows).persist()
        try:
            if batch.isEmpty():
                return
            retry_on_conflict(lambda: merge_rows(batch, self.path, keys, self.latest_by), what=f"MERGE into {self.path}")
            if rank is not None:
                retry_on_conflict(lambda: rerank(batch, self.path, keys, rank), what=f"re-rank of {self.path}")
        finally:
            batch.unpersist()


def latest_rows(rows: DataFrame, keys: list[str], by: str) -> DataFrame:
    """One row per ``keys``: the newest by ``by`` (ties broken by the row's content, so a replayed
    batch picks the same row)."""
    order = [F.col(by).desc_nulls_last(), F.xxhash64(*rows.columns).desc()]
    newest = F.row_number().over(Window.partitionBy(*keys).orderBy(*order))
    return rows.withColumn("_newest", newest).where("_newest = 1").drop("_newest")


def merge_rows(batch: DataFrame, path: str, keys: list[str], latest_by: str | None = None) -> None:
    """Upsert ``batch`` into the Delta table at ``path``; rows are matched on ``keys`` (null-safe).

    When the first key is a time (``window_start``, ``second``), the match is bounded to the
    batch's range of it, so Delta skips the files of older windows instead of scanning them all.
    With ``latest_by``, a row replaces a matched one only when it is not older by that column.
    """
    spark = batch.sparkSession
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    cond += _time_range(batch, keys[0])
    columns = [c for c in DeltaTable.forPath(spark, path).toDF().columns if c in batch.columns]
    values = {f"`{c}`": f"s.`{c}`" for c in columns}
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(batch.alias("s"), cond)
        .whenMatchedUpdate(condition=f"s.`{latest_by}` >= t.`{latest_by}` OR t.`{latest_by}` IS NULL" if latest_by
                           else None, set=values)
        .whenNotMatchedInsert(values=values)
        .execute()
    )


def _time_range(batch: DataFrame, key: str) -> str:
    """`` AND t.key BETWEEN lo AND hi`` for a timestamp/date key without nulls in ``batch``, else ''.

    The bounds travel as integers (microseconds, days), never as Python datetimes, which
    PySpark would shift to the Python process's time zone.
    """
    dtype = type(batch.schema[key].dataType)
    to_int, from_int = {TimestampType: (F.unix_micros, "timestamp_micros"),
                        DateType: (F.unix_date, "date_from_unix_date")}.get(dtype, (None, None))
    if to_int is None:
        return ""
    col = F.col(key)
    lo, hi, nulls = batch.agg(to_int(F.min(col)), to_int(F.max(col)), F.count(F.when(col.isNull(), 1))).first()
    if lo is None or nulls:
        return ""
    return f" AND t.`{key}` BETWEEN {from_int}({lo}) AND {from_int}({hi})"


def rerank(batch: DataFrame, path: str, keys: list[str], rank: RankConf) -> None:
    """Recompute ``rank.column`` for every group (``rank.within``) that ``batch`` touched."""
    spark = batch.sparkSession
    table = spark.read.format("delta").load(path)
    touched = batch.select(*rank.within).distinct()
    ranked = (
        table.join(touched, [table[c].eqNullSafe(touched[c]) for c in rank.within], "left_semi")
        .select(*keys, rank.column, rank_column(rank).alias("_rank"))
        .filter(~F.col(rank.column).eqNullSafe(F.col("_rank")))
    )
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(ranked.alias("s"), cond)
        .whenMatchedUpdate(set={f"`{rank.column}`": "s._rank"})
        .execute()
    )


def rank_column(rank: RankConf) -> Column:
    """The rank of a row within its ``rank.within`` group, ordered by ``rank.by``."""
    order = [F.col(parts[0]).desc() if parts[-1].lower() == "desc" and len(parts) == 2 else F.col(parts[0])
             for parts in (item.split() for item in rank.by)]
    return F.rank().over(Window.partitionBy(*rank.within).orderBy(*order))


def with_rank(rows: DataFrame, sink: SinkConf) -> DataFrame:
    """``rows`` (complete groups, e.g. a batch job's output) with the sink's rank column, if it has one."""
    return rows if sink.rank is None else rows.withColumn(sink.rank.column, rank_column(sink.rank).cast("int"))
