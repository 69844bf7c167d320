"""Topic administration through kafka-python's admin client."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from collections.abc import Mapping

from kappalake.config import KafkaConf, TopicConf
from kappalake.ingest.kafka_clients import python_client_kwargs


def admin_client(kafka: KafkaConf) -> KafkaAdminClient:
    return KafkaAdminClient(**python_client_kwargs(kafka), request_timeout_ms=30000)


def ensure_topics(kafka: KafkaConf, wanted: Mapping[str, TopicConf]) -> list[str]:
    """Create the topics of ``wanted`` (name on the cluster -> its settings) that do not exist
    yet; return the names created. ``Config.topic_specs`` gives the configured ones."""
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, num_partitions=t.partitions, replication_factor=t.replication_factor, topic_configs=dict(t.config))
            for name, t in wanted.items()
            if name not in existing
        ]
        created = []
        for topic in new:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:  # created concurrently by someone else
                pass
        if created:
            admin.wait_for_topics(created)
        return created
    finally:
        admin.close()


def end_offsets(kafka: KafkaConf, topic: str) -> dict[int, int]:
    """Latest offset (next offset to be written) per partition of ``topic`` (its name on the cluster)."""
    return _offsets(kafka, topic, "end")


def beginning_offsets(kafka: KafkaConf, topic: str) -> dict[int, int]:
    """Earliest offset Kafka still retains per partition of ``topic`` (retention moves it up)."""
    return _offsets(kafka, topic, "beginning")


def _offsets(kafka: KafkaConf, topic: str, which: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**python_client_kwargs(kafka), enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        found = consumer.end_offsets(parts) if which == "end" else consumer.beginning_offsets(parts)
        return {tp.partition: off for tp, off in found.items()}
    finally:
        consumer.close()
