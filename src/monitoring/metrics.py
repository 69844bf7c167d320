"""Every micro-batch of every query, recorded by a StreamingQueryListener.

The listener runs on Spark's listener bus; it only turns events into rows (and JSON log lines)
and buffers them. The job's main loop calls ``Recording.flush`` (``monitoring/recording.py``) every
``monitoring.flush_s`` seconds: one Delta append for the buffered rows, plus the consumer lag of
the Kafka-reading pipelines measured at that moment. So a slow lake never slows the listener
bus, and the metrics table gets one commit per flush rather than one per batch.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener
from pyspark.sql.types import (ArrayType, DateType, DoubleType, LongType, MapType, StringType, StructField,
                               StructType, TimestampType)

log = logging.getLogger("kappalake.metrics")

SOURCE = StructType([
    StructField("description", StringType()),
    StructField("start_offset", StringType()),
    StructField("end_offset", StringType()),
    StructField("latest_offset", StringType()),
    StructField("input_rows", LongType()),
])
SCHEMA = StructType([
    StructField("pipeline", StringType()),
    StructField("query_id", StringType()),
    StructField("run_id", StringType()),
    StructField("event", StringType()),            # started | progress | idle | terminated
    StructField("batch_id", LongType()),
    StructField("at", TimestampType()),
    StructField("input_rows", LongType()),
    StructField("input_rows_per_s", DoubleType()),
    StructField("processed_rows_per_s", DoubleType()),
    StructField("batch_ms", LongType()),            # the batch's whole trigger execution
    StructField("durations_ms", MapType(StringType(), LongType())),  # addBatch, latestOffset, walCommit, ...
    StructField("state_rows", LongType()),
    StructField("state_memory_bytes", LongType()),
    StructField("watermark", StringType()),
    StructField("sources", ArrayType(SOURCE)),
    StructField("error", StringType()),
    StructField("date", DateType()),
])
PARTITION_BY = ["date"]


def _ts(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _offset_text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def progress_row(p: dict[str, Any], event: str = "progress") -> dict[str, Any]:
    """A metrics row from a query progress (``StreamingQueryProgress.json``, parsed)."""
    at = _ts(p.get("timestamp"))
    state = p.get("stateOperators") or []
    durations = {k: int(v) for k, v in (p.get("durationMs") or {}).items()}
    return {
        "pipeline": p.get("name"), "query_id": p.get("id"), "run_id": p.get("runId"), "event": event,
        "batch_id": p.get("batchId"), "at": at, "input_rows": int(p.get("numInputRows") or 0),
        "input_rows_per_s": float(p.get("inputRowsPerSecond") or 0.0),
        "processed_rows_per_s": float(p.get("processedRowsPerSecond") or 0.0),
        "batch_ms": durations.get("triggerExecution"), "durations_ms": durations,
        "state_rows": sum(int(s.get("numRowsTotal") or 0) for s in state) if state else None,
        "state_memory_bytes": sum(int(s.get("memoryUsedBytes") or 0) for s in state) if state else None,
        "watermark": (p.get("eventTime") or {}).get("watermark"),
        "sources": [{"description": s.get("description"), "start_offset": _offset_text(s.get("startOffset")),
                     "end_offset": _offset_text(s.get("endOffset")),
                     "latest_offset": _offset_text(s.get("latestOffset")),
                     "input_rows": int(s.get("numInputRows") or 0)} for s in p.get("sources") or []],
        "error": None, "date": at.date(),
    }


def kafka_committed(p: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the next offset a progress's Kafka source will read: its
    ``endOffset``, which is committed once the progress is reported."""
    out: dict[tuple[str, int], int] = {}
    for s in p.get("sources") or []:
        if not str(s.get("description", "")).startswith("KafkaV2"):
            continue
        end = s.get("endOffset")
        end = json.loads(end) if isinstance(end, str) else end
        for topic, parts in (end or {}).items():
            out.update({(topic, int(part)): int(n) for part, n in parts.items()})
    return out


class StreamRecorder(StreamingQueryListener):
    """Buffers a row per query event and remembers each Kafka-reading query's committed offsets."""

    def __init__(self, json_logs: bool = True) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._names: dict[str, str] = {}
        self.committed: dict[str, dict[tuple[str, int], int]] = {}
        self._running: set[str] = set()
        self.json_logs = json_logs

    def _add(self, row: dict[str, Any]) -> None:
        if self.json_logs:
            log.info(json.dumps({k: v for k, v in row.items() if v is not None and k != "date"}, default=str))
        with self._lock:
            self._rows.append(row)

    def _bare(self, query_id: str, run_id: str, event: str, at: str | None = None, error: str | None = None) -> dict:
        when = _ts(at)
        row = dict.fromkeys(SCHEMA.fieldNames())
        row.update(pipeline=self._names.get(query_id), query_id=query_id, run_id=run_id, event=event, at=when,
                   error=error, date=when.date())
        return row

    def onQueryStarted(self, event) -> None:  # noqa: ANN001, N802 - Spark's listener interface
        self._names[str(event.id)] = event.name
        self._running.add(str(event.id))
        self._add(self._bare(str(event.id), str(event.runId), "started", event.timestamp))

    def onQueryProgress(self, event) -> None:  # noqa: ANN001, N802
        p = json.loads(event.progress.json)
        self._names.setdefault(p["id"], p.get("name"))
        offsets = kafka_committed(p)
        if offsets and p.get("name"):
            with self._lock:
                self.committed.setdefault(p["name"], {}).update(offsets)
        self._add(progress_row(p))

    def onQueryIdle(self, event) -> None:  # noqa: ANN001, N802
        self._add(self._bare(str(event.id), str(event.runId), "idle", event.timestamp))

    def onQueryTerminated(self, event) -> None:  # noqa: ANN001, N802
        self._running.discard(str(event.id))
        self._add(self._bare(str(event.id), str(event.runId), "terminated", error=event.exception))

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def running(self) -> bool:
        """Whether a query this listener saw start has not reported its end yet."""
        return bool(self._running)

    def offsets(self) -> dict[str, dict[tuple[str, int], int]]:
        with self._lock:
            return {n: dict(o) for n, o in self.committed.items()}

