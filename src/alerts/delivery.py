"""After a micro-batch is committed to Delta: publish its rows to Kafka and hand them to notifiers.

Guarantees, per path (see docs/alerts.md, "Delivery and guarantees"):
- Delta table: exactly once (the batch is appended with ``txnAppId``/``txnVersion`` first).
- Kafka topic: at-least-once. A batch replayed after a crash is sent again; every message
  carries ``alert_id`` and ``event`` so consumers can drop repeats.
- Notifiers: best effort with retries, never blocking the stream (a bounded queue and a
  worker thread per notifier, backoff between attempts). Alerts still queued when the
  process dies are not re-sent (they are in the table and on the topic). A webhook gets
  ``Idempotency-Key: <alert_id>:<event>``. Every outcome (delivered, failed, dropped) is
  appended to ``alerts.deliveries_table``.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappalake.alerts.notifiers import Delivery, Dispatcher, build_notifiers
from kappalake.config import KafkaConf, PipelineSpec
from kappalake.frames import local_frame
from kappalake.ingest.kafka_clients import write_records
from kappalake.lake.tables import ensure_table

DELIVERY_SCHEMA = ("alert_id string, event string, notifier string, status string, attempts int, error string, "
                   "finished_at string, pipeline string")


def publish_rows(batch: DataFrame, kafka: KafkaConf, topic: str, key: str) -> None:
    """Send every row of ``batch`` to Kafka ``topic`` (its name on the cluster) as compact JSON,
    keyed by column ``key``."""
    write_records(batch.select(F.col(key).cast("string").alias("key"), F.to_json(F.struct(*batch.columns)).alias("value")),
                  kafka, topic)


class BatchDelivery:
    """Publishing and notifying for one pipeline's sink (created when its query starts)."""

    def __init__(self, spark: SparkSession, spec: PipelineSpec):
        self.spark, self.spec = spark, spec
        self.dispatcher: Dispatcher | None = None
        if (a := spec.alerts) is not None and spec.deliveries_path is not None:
            self.dispatcher = Dispatcher(build_notifiers(a.notifiers), max_attempts=a.max_attempts, backoff_s=a.backoff_s,
                                         max_backoff_s=a.max_backoff_s, queue_size=a.queue_size)
            self.table = spec.deliveries_path
            ensure_table(spark, self.table, _delivery_schema(), [], spec.table_properties)

    @property
    def active(self) -> bool:
        return bool(self.spec.publish_topic or self.dispatcher)

    def deliver(self, rows: DataFrame) -> None:
        """Publish and notify the committed rows of one batch (``rows`` is persisted by the caller)."""
        if self.spec.publish_topic:
            publish_rows(rows, self.spec.kafka, self.spec.publish_topic, self.spec.sink.publish_key)
        if self.dispatcher is not None:
            self.dispatcher.submit(json.loads(r) for r in rows.toJSON().collect())
            self._record(self.dispatcher.drain())

    def close(self, timeout_s: float = 10.0) -> list[Delivery]:
        """Wait (bounded) for notifications under way and record every outcome."""
        if self.dispatcher is None:
            return []
        outcomes = self.dispatcher.close(timeout_s)
        self._record(outcomes)
        return outcomes

    def _record(self, outcomes: list[Delivery]) -> None:
        if not outcomes:
            return
        rows: list[dict[str, Any]] = [o.as_dict() | {"pipeline": self.spec.name} for o in outcomes]
        local_frame(self.spark, rows, _delivery_schema()).write.format("delta").mode("append").save(self.table)


def _delivery_schema():
    from pyspark.sql.types import StructType

    return StructType.fromDDL(DELIVERY_SCHEMA)
