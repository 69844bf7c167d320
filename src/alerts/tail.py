"""``kappalake alerts tail``: follow the alerts topic with kafka-python and print each alert."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from kappalake.config import KafkaConf


def format_alert(a: dict[str, Any]) -> str:
    """One line per alert event: episodes (open/close) from the detectors and flags from the fast path."""
    head = f"{str(a.get('event_time', ''))[:23]:<23} {a.get('severity', '?'):<8} {a.get('event', '?'):<5} " \
           f"{a.get('kind', '?'):<11} {a.get('entity', '?'):<24} {a.get('metric', '')}"
    if a.get("event") == "flag":
        return f"{head} {a.get('value')} {a.get('reason')} (limit {a.get('limit')})"
    value = f"peak {a.get('peak')}" if a.get("event") == "close" else a.get("value")
    band = "..".join("" if a.get(k) is None else f"{a[k]:.4g}" for k in ("low", "high"))
    dur = f", {a['duration_s']:.0f} s" if a.get("duration_s") is not None else ""
    return f"{head} {value} {a.get('reason')} (band {band}{dur}) [{str(a.get('alert_id'))[:8]}]"


def follow(kafka: KafkaConf, topic: str = "alerts", from_beginning: bool = False, max_messages: int | None = None,
           timeout_s: float | None = None) -> Iterator[tuple[str | None, dict[str, Any] | str]]:
    """Yield ``(key, alert)`` from every partition of ``topic`` (its name on the cluster; no
    consumer group, nothing committed) over the resolved Kafka settings (``Config.kafka_settings``).

    Stops after ``max_messages``, or when nothing arrived for ``timeout_s`` seconds; otherwise runs
    until interrupted. A message that is not JSON is yielded as its text.
    """
    from kafka import KafkaConsumer, TopicPartition

    from kappalake.ingest.kafka_clients import python_client_kwargs

    name = topic
    consumer = KafkaConsumer(**python_client_kwargs(kafka), enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(name)
        if not parts:
            raise ValueError(f"topic {name!r} does not exist on {kafka.bootstrap_servers} (run: kappalake topics create)")
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        consumer.assign(tps)
        (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*tps)
        seen, idle_since = 0, time.monotonic()
        while max_messages is None or seen < max_messages:
            batch = consumer.poll(timeout_ms=500)
            records = sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp)
            if not records:
                if timeout_s is not None and time.monotonic() - idle_since > timeout_s:
                    return
                continue
            idle_since = time.monotonic()
            for r in records:
                text = r.value.decode("utf-8", "replace") if r.value is not None else ""
                try:
                    value: dict[str, Any] | str = json.loads(text)
                except ValueError:
                    value = text
                yield (r.key.decode("utf-8", "replace") if r.key is not None else None), value
                seen += 1
                if max_messages is not None and seen >= max_messages:
                    return
    finally:
        consumer.close()


def tail(kafka: KafkaConf, out: Callable[[str], Any] = print, as_json: bool = False, **kwargs: Any) -> int:
    """Print alerts as they arrive (``kwargs`` as for :func:`follow`); returns how many were printed."""
    n = 0
    for _key, alert in follow(kafka, **kwargs):
        if as_json or not isinstance(alert, dict):
            out(alert if isinstance(alert, str) else json.dumps(alert, separators=(",", ":")))
        else:
            out(format_alert(alert))
        n += 1
    return n
