"""The benchmark's offers stage: sign-up -> offer on the ``offers`` topic, as the application sees it.

Sign-ups are produced live at a steady rate (the simulator, no faults) while bronze_signups and
silver_signups stream; silver's routes publish each offer. The delay of an offer is its Kafka
timestamp on the offers topic minus the sign-up's on the signups topic (both set when the record
was produced), matched by the sign-up's event id; sign-ups of the warm-up are left out.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from kappalake.bench.probes import percentiles
from kappalake.ingest.kafka_clients import python_client_kwargs
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import start_pipeline

PIPELINES = ["bronze_signups", "silver_signups"]


def offer_latency(ctx: Any, rate: int, seconds: float, warmup_s: float, trigger: str | None) -> dict:
    """Produce ``rate`` sign-ups/s for ``seconds`` while the sign-up pipelines stream (``trigger``:
    their processing time, None: as configured); the sign-up -> offer delays (p50/p95/p99, ms)."""
    from kappalake.bench.stages import _raise_failed, _stop_all, say

    suffix = int(time.time())
    triggers = {f"pipelines.{n}.trigger": {"processing_time": trigger} for n in PIPELINES if trigger}
    cfg = ctx.stage_cfg("offers", **{"topics.signups.name": f"bench_signups_{suffix}",
                                     "topics.offers.name": f"bench_offers_{suffix}"}, **triggers)
    ctx.topics += ensure_topics(cfg.kafka_settings, cfg.topic_specs(["signups", "offers"]))
    write_reference_tables(ctx.spark, cfg)
    signups, offers = _Reader(cfg, cfg.topic_name("signups")), _Reader(cfg, cfg.topic_name("offers"))
    queries: dict = {}
    closers: list = []
    try:
        for n in PIPELINES:
            queries[n] = start_pipeline(ctx.spark, cfg.pipeline(n), None, closers)
        signups.start()
        offers.start()
        say(f"{', '.join(PIPELINES)} streaming; producing {rate:,} sign-ups/s for {seconds:g} s")
        started_ms = int(time.time() * 1000)
        sent = produce(cfg, ProduceSpec("signups", count=int(rate * seconds), rate=rate, seed=suffix % 1000))
        deadline = time.monotonic() + max(60.0, seconds)
        while len(offers.times) < sent.acked and time.monotonic() < deadline:  # every sign-up is valid
            _raise_failed(list(queries.values()))
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        signups.stop()
        offers.stop()
        _stop_all(list(queries.values()), closers)
    measured_from = started_ms + int(warmup_s * 1000)
    delays = [offered - signups.times[e] for e, offered in offers.times.items()
              if e in signups.times and signups.times[e] >= measured_from]
    return {"rate_target": rate, "seconds": seconds, "trigger": trigger or "as configured",
            "warmup_excluded_s": warmup_s, "signups": sent.acked, "offers": len(offers.times),
            "offer_messages": offers.messages, "latency_ms": percentiles(delays)}


class _Reader(threading.Thread):
    """Follows a topic from its beginning: the first Kafka timestamp of each event id."""

    def __init__(self, cfg: Any, topic: str):
        super().__init__(daemon=True, name=f"bench-read-{topic}")
        self.cfg, self.topic = cfg, topic
        self.times: dict[str, int] = {}
        self.messages = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(self.topic, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                 **python_client_kwargs(self.cfg.kafka_settings))
        try:
            while not self._stop_event.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for r in records:
                        self.messages += 1
                        try:
                            event_id = json.loads(r.value)["event_id"]
                        except (ValueError, KeyError, TypeError):
                            continue
                        self.times.setdefault(event_id, r.timestamp)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
