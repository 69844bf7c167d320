"""Idempotent Delta writes for micro-batches.

``foreachBatch`` is at-least-once: after a crash Spark replays the last planned batch with
the same batch id and offsets. Each write carries Delta's ``txnAppId``/``txnVersion``, so a
replayed batch that already committed is skipped by Delta itself and nothing is duplicated.
"""

from __future__ import annotations

from pyspark.sql import DataFrame


def append_idempotent(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Append ``df`` to the Delta table at ``path`` once per ``(app_id, version)``."""
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
        .option("mergeSchema", "true")  # additive columns of a newer release land in existing tables
        .save(path)
    )
