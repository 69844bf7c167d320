"""The streaming job's self-recording: metrics rows, consumer lag and group commits, flushed
from the job's main loop (never from Spark's listener thread)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pyspark.sql import SparkSession

from kappalake.config import KafkaConf, LakeConf, MonitoringConf
from kappalake.lake.tables import write_rows
from kappalake.monitoring import lag, metrics

log = logging.getLogger("kappalake.ops")


class Recording:
    """Listens to every query of ``spark`` until :meth:`close`; :meth:`tick` flushes when due.
    ``monitoring`` says what is recorded where, in ``lake``; ``kafka`` (resolved settings) is
    asked for end offsets and takes the group commits."""

    def __init__(self, spark: SparkSession, monitoring: MonitoringConf, lake: LakeConf, kafka: KafkaConf) -> None:
        self.spark, self.monitoring, self.lake, self.kafka = spark, monitoring, lake, kafka
        self.listener = metrics.StreamRecorder(monitoring.json_log is not None)
        self._handler = _json_handler(monitoring.json_log)
        spark.streams.addListener(self.listener)
        self._last = time.monotonic()
        self._warned = False

    def tick(self) -> None:
        if time.monotonic() - self._last >= self.monitoring.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows and the lag measured now. A failure is logged, not raised:
        monitoring must never stop the streams it watches."""
        self._last = time.monotonic()
        m = self.monitoring
        try:
            write_rows(self.spark, self.lake, m.metrics_table, metrics.SCHEMA, self.listener.drain(), metrics.PARTITION_BY)
            committed = self.listener.offsets()
            if committed:
                write_rows(self.spark, self.lake, m.lag_table, lag.SCHEMA, lag.lag_rows(self.kafka, committed),
                           lag.PARTITION_BY)
                for pipeline, offsets in committed.items():
                    if (group := lag.group_name(m.consumer_group, pipeline)) is not None:
                        lag.commit_to_group(self.kafka, group, offsets)
            self._warned = False
        except Exception as e:  # noqa: BLE001 - see the docstring
            if not self._warned:
                log.warning("recording stream metrics failed (%s: %s); the streams go on", type(e).__name__, e)
            self._warned = True

    def close(self, wait_s: float = 5.0) -> None:
        """Wait (briefly) for the stop events of the queries, flush, stop listening."""
        deadline = time.monotonic() + wait_s
        while self.listener.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.flush()
        self.spark.streams.removeListener(self.listener)
        if self._handler is not None:
            metrics.log.removeHandler(self._handler)
            self._handler.close()


def _json_handler(target: str | None) -> logging.Handler | None:
    """A handler printing the metrics logger's JSON lines as they are (none if already routed)."""
    if target is None:
        return None
    metrics.log.setLevel(logging.INFO)
    metrics.log.propagate = False
    if target == "-":
        handler: logging.Handler = logging.StreamHandler()
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    metrics.log.addHandler(handler)
    return handler
