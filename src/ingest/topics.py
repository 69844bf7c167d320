"""Topic administration through kafka-python's admin client."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from kappalake.config import Config
from kappalake.ingest.kafka_clients import python_client_kwargs


def admin_client(cfg: Config) -> KafkaAdminClient:
    return KafkaAdminClient(**python_client_kwargs(cfg), request_timeout_ms=30000)


def ensure_topics(cfg: Config, names: list[str] | None = None) -> list[str]:
    """Create the configured topics that do not exist yet; return the names created."""
    wanted = {cfg.topic_name(t): cfg.topics[t] for t in (names or cfg.topics)}
    admin = admin_client(cfg)
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


def end_offsets(cfg: Config, topic: str) -> dict[int, int]:
    """Latest offset (next offset to be written) per partition of ``topic``."""
    return _offsets(cfg, topic, "end")


def beginning_offsets(cfg: Config, topic: str) -> dict[int, int]:
    """Earliest offset Kafka still retains per partition of ``topic`` (retention moves it up)."""
    return _offsets(cfg, topic, "beginning")


def _offsets(cfg: Config, topic: str, which: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**python_client_kwargs(cfg), enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        found = consumer.end_offsets(parts) if which == "end" else consumer.beginning_offsets(parts)
        return {tp.partition: off for tp, off in found.items()}
    finally:
        consumer.close()
