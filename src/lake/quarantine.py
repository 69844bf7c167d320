"""Writes to a quarantine table by Kafka coordinates (re-judged records, records that moved on).

The stream appends its quarantined rows like any table (:class:`~kappalake.lake.writers.Append`,
exactly once per batch); reprocessing and quarantine replay re-judge records already there,
which these writes match by pipeline and Kafka coordinates, so running them twice changes
nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame

from kappalake.lake.writers import Txn
from kappalake.quality.quarantine import COORDS, REASONS, same_record


@dataclass(frozen=True)
class QuarantineUpsert:
    """Quarantine rows (:func:`~kappalake.quality.quarantine.quarantine_rows`) of ``pipeline`` by
    Kafka coordinates: a record already there gets the current verdict (its reasons), a new one
    is inserted (with ``insert``)."""

    path: str
    pipeline: str
    insert: bool = True

    def write(self, rows: DataFrame, txn: Txn | None = None) -> None:
        merge = (DeltaTable.forPath(rows.sparkSession, self.path).alias("t")
                 .merge(rows.alias("s"), same_record(self.pipeline))
                 .whenMatchedUpdate(condition="NOT (t.errors <=> s.errors)", set={c: f"s.{c}" for c in REASONS}))
        if self.insert:
            merge = merge.whenNotMatchedInsertAll()
        merge.execute()


def delete_quarantined(qpath: str, pipeline: str, coords: DataFrame) -> None:
    """Delete ``pipeline``'s quarantine records at the Kafka coordinates in ``coords`` (they moved on)."""
    (DeltaTable.forPath(coords.sparkSession, qpath).alias("t")
     .merge(coords.select(*COORDS).alias("s"), same_record(pipeline))
     .whenMatchedDelete().execute())
