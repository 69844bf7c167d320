"""Consumer lag of the Kafka-reading queries, computed by the job itself.

Spark's Kafka source tracks its offsets in the checkpoint and never commits them to a
consumer group, so Kafka's own tools see no lag. The job measures it (the topic's end offset
minus the offset the query has committed), records it, and can commit the offsets to a named
group so ``kafka-consumer-groups.sh --describe`` and lag exporters show the same figures.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from kafka.errors import KafkaError
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType

from kappalake.config import KafkaConf
from kappalake.ingest.topics import admin_client, end_offsets

log = logging.getLogger("kappalake.ops")

SCHEMA = StructType([
    StructField("pipeline", StringType()),
    StructField("topic", StringType()),
    StructField("partition", LongType()),
    StructField("end_offset", LongType()),        # next offset Kafka will write
    StructField("committed_offset", LongType()),  # next offset the query will read
    StructField("lag", LongType()),
    StructField("at", TimestampType()),
    StructField("date", DateType()),
])
PARTITION_BY = ["date"]


def lag_rows(kafka: KafkaConf, committed: dict[str, dict[tuple[str, int], int]],
             topics: dict[str, set[str]] | None = None) -> list[dict[str, Any]]:
    """One row per pipeline and partition of the topics in ``committed`` (pipeline -> next
    offsets), plus those ``topics`` names for a pipeline (its partitions count as unread)."""
    now = datetime.now(timezone.utc)
    ends: dict[str, dict[int, int]] = {}
    rows = []
    for pipeline, offsets in committed.items():
        for topic in sorted({t for t, _ in offsets} | (topics or {}).get(pipeline, set())):
            if topic not in ends:
                ends[topic] = end_offsets(kafka, topic)
            for part, end in sorted(ends[topic].items()):
                done = offsets.get((topic, part), 0)
                rows.append({"pipeline": pipeline, "topic": topic, "partition": part, "end_offset": end,
                             "committed_offset": done, "lag": max(end - done, 0), "at": now, "date": now.date()})
    return rows


def commit_to_group(kafka: KafkaConf, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit ``offsets`` (next offsets to read) to consumer group ``group``, as a consumer would."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    admin = admin_client(kafka)
    try:
        for attempt in range(5):
            try:
                admin.alter_group_offsets(group, {TopicPartition(t, p): OffsetAndMetadata(o, "kappalake", -1)
                                                  for (t, p), o in offsets.items()})
                return
            except KafkaError as e:  # e.g. the coordinator still starting on a new cluster
                if not e.retriable or attempt == 4:
                    raise
                time.sleep(0.5 * 2 ** attempt)
    finally:
        admin.close()


def group_name(pattern: str | None, pipeline: str) -> str | None:
    """The consumer group ``pipeline``'s offsets are committed to (``monitoring.consumer_group``)."""
    return None if pattern is None else pattern.replace("{pipeline}", pipeline)
