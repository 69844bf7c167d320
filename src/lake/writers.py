"""How rows reach a Delta table: writers behind one interface, and retries of commits that met a
concurrent one.

A :class:`Writer` takes a static DataFrame and, from a stream, the :class:`Txn` of its
micro-batch. ``foreachBatch`` is at-least-once: after a crash Spark replays the last planned
batch with the same batch id and offsets, so each writer is idempotent under a replay:
:class:`Append` carries Delta's ``txnAppId``/``txnVersion`` (Delta skips a batch it has
committed), :class:`~kappalake.lake.sinks.Merge` writes complete values by key,
:class:`ReplaceRange` replaces exactly a range, and
:class:`~kappalake.lake.quarantine.QuarantineUpsert` merges by Kafka coordinates. The stream,
reprocessing, quarantine replay and the tests write through them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from delta.exceptions import (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
                              ConcurrentTransactionException, ConcurrentWriteException,
                              DeltaConcurrentModificationException, MetadataChangedException)
from pyspark.sql import DataFrame

log = logging.getLogger("kappalake.lake")
T = TypeVar("T")


@dataclass(frozen=True)
class Txn:
    """A write's place in its stream: Delta commits each ``(app_id, version)`` once."""

    app_id: str
    version: int

    def sub(self, part: str) -> "Txn":
        """The same batch's transaction for another table it writes (each table counts its own)."""
        return Txn(f"{self.app_id}/{part}", self.version)


class Writer(Protocol):
    """Writes rows to the Delta table at ``path``; a replay of the same ``txn`` changes nothing."""

    path: str

    def write(self, rows: DataFrame, txn: Txn | None = None) -> None: ...


@dataclass(frozen=True)
class Append:
    """Append: exactly once per ``txn`` (a stream's batch), a plain append without one."""

    path: str

    def write(self, rows: DataFrame, txn: Txn | None = None) -> None:
        # mergeSchema: additive columns of a newer release land in existing tables.
        writer = rows.write.format("delta").mode("append").option("mergeSchema", "true")
        if txn is not None:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        writer.save(self.path)


@dataclass(frozen=True)
class ReplaceRange:
    """Replace the rows matching ``predicate`` (SQL; None: the whole table) by ``rows``, in one commit."""

    path: str
    predicate: str | None = None

    def write(self, rows: DataFrame, txn: Txn | None = None) -> None:
        writer = rows.write.format("delta").mode("overwrite").option("mergeSchema", "true")
        if self.predicate is not None:
            writer = writer.option("replaceWhere", self.predicate)
        writer.save(self.path)


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
