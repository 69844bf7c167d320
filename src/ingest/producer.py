"""kafka-python producer that sends keyed JSON events with batching and delivery accounting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.serializer import Serializer

from kappalake.config import Config
from kappalake.ingest.kafka_clients import python_client_kwargs


@dataclass
class SendStats:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    seconds: float = 0.0
    last_error: str | None = field(default=None, repr=False)

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0


class KeySerializer(Serializer):
    """str keys as UTF-8; bytes and None pass through."""

    def serialize(self, topic: str, headers: Any, data: Any) -> bytes | None:
        return data.encode() if isinstance(data, str) else data


class JsonValueSerializer(Serializer):
    """Mappings as compact JSON; bytes pass through untouched (e.g. deliberately malformed payloads)."""

    def serialize(self, topic: str, headers: Any, data: Any) -> bytes | None:
        if data is None or isinstance(data, bytes):
            return data
        return json.dumps(data, separators=(",", ":")).encode()


def make_producer(cfg: Config, **overrides: Any) -> KafkaProducer:
    """A durable producer: acks=all, idempotent, batched; ``overrides`` are KafkaProducer kwargs."""
    settings: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_request_size": 8 * 1024 * 1024,
        "key_serializer": KeySerializer(),
        "value_serializer": JsonValueSerializer(),
    }
    settings.update(overrides)
    return KafkaProducer(**python_client_kwargs(cfg), **settings)


def send_events(
    producer: KafkaProducer,
    topic: str,
    events: Iterable[tuple[Any, Any]],
    rate: float | None = None,
    progress: Callable[[SendStats], None] | None = None,
    progress_every: float = 1.0,
) -> SendStats:
    """Send ``(key, value)`` pairs to ``topic``, optionally paced to ``rate`` events/s; flush and count acks."""
    stats = SendStats()

    def ok(_meta: Any) -> None:
        stats.acked += 1

    def failed(exc: BaseException) -> None:
        stats.errors += 1
        stats.last_error = repr(exc)

    start = last_report = time.monotonic()
    for key, value in events:
        producer.send(topic, key=key, value=value).add_callback(ok).add_errback(failed)
        stats.sent += 1
        now = time.monotonic()
        if rate:
            ahead = stats.sent / rate - (now - start)
            if ahead > 0:
                time.sleep(ahead)
        if progress and now - last_report >= progress_every:
            stats.seconds = now - start
            progress(stats)
            last_report = now
    producer.flush()
    stats.seconds = time.monotonic() - start
    if progress:
        progress(stats)
    return stats


def produce(cfg: Config, logical_topic: str, events: Iterable[tuple[Any, Any]], **kwargs: Any) -> SendStats:
    """Open a producer for ``cfg``, send ``events`` to the configured topic and close it."""
    producer = make_producer(cfg)
    try:
        return send_events(producer, cfg.topic_name(logical_topic), events, **kwargs)
    finally:
        producer.close()
