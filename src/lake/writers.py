"""Idempotent Delta writes for micro-batches, and retries of commits that met a concurrent one.

``foreachBatch`` is at-least-once: after a crash Spark replays the last planned batch with
the same batch id and offsets. Each write carries Delta's ``txnAppId``/``txnVersion``, so a
replayed batch that already committed is skipped by Delta itself and nothing is duplicated.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from delta.exceptions import (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
                              ConcurrentTransactionException, ConcurrentWriteException,
                              DeltaConcurrentModificationException, MetadataChangedException)
from pyspark.sql import DataFrame

log = logging.getLogger("kappalake.lake")
T = TypeVar("T")


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


_CONFLICT_CLASSES = (DeltaConcurrentModificationException, ConcurrentAppendException, ConcurrentDeleteReadException,
                     ConcurrentDeleteDeleteException, ConcurrentTransactionException, ConcurrentWriteException,
                     MetadataChangedException)


def is_conflict(error: BaseException) -> bool:
    """True for a Delta commit conflict (optimistic concurrency): the operation may simply be retried."""
    return isinstance(error, _CONFLICT_CLASSES) or "DELTA_CONCURRENT" in str(error)


def retry_on_conflict(action: Callable[[], T], attempts: int = 5, backoff_s: float = 0.5, what: str = "write") -> T:
    """Run ``action``; when a concurrent commit conflicts with it, wait a little and run it again.

    Only for actions that are safe to repeat (idempotent writes, MERGEs of complete values,
    recomputations that read the table anew).
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as e:  # noqa: BLE001 - re-raised unless it is a conflict with attempts left
            if attempt == attempts or not is_conflict(e):
                raise
            log.warning("%s conflicted with a concurrent commit (attempt %d of %d), retrying: %s", what, attempt,
                        attempts, str(e).splitlines()[0][:200])
            time.sleep(backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")
