"""Producers against the real broker: N events in -> N records on the topic, keyed, with faults marked."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from kafka import KafkaConsumer, TopicPartition

from kappalake.cli import main
from kappalake.config import Config
from kappalake.ingest import contracts
from kappalake.ingest.faults import FAULT_HEADER, FAULT_KINDS
from kappalake.ingest.kafka_clients import python_client_kwargs
from kappalake.ingest.simulators.base import parse_ms
from kappalake.pipelines.reference import reference_rows
from tests.conftest import CONF_DIR


def consume_all(cfg: Config, topic: str, timeout: float = 60.0) -> list:
    """Every record of ``topic`` (all partitions, from the beginning to the current end)."""
    consumer = KafkaConsumer(**python_client_kwargs(cfg.kafka_settings), enable_auto_commit=False, max_partition_fetch_bytes=4 << 20,
                             fetch_max_bytes=16 << 20)
    try:
        name = cfg.topic_name(topic)
        parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def cli(cfg_overrides: dict, *args: str) -> int:
    sets = [x for k, v in cfg_overrides.items() for x in ("--set", f"{k}={v}")]
    return main(["--conf-dir", str(CONF_DIR), *sets, *args])


def overrides_of(cfg: Config, broker_conf: dict) -> dict:
    return {**broker_conf, "topics.clickstream.name": cfg.topic_name("clickstream"),
            "topics.telemetry.name": cfg.topic_name("telemetry"), "lake.root": cfg.lake.root}


def test_n_events_in_n_records_out_keyed_and_ordered_per_key(cfg, broker_conf, capsys):
    assert cli(overrides_of(cfg, broker_conf), "produce", "clickstream", "--count", "3000", "--seed", "4",
               "--start", "2026-11-22T08:00:00Z", "--quiet") == 0
    assert "clickstream: 3,000 of 3,000 acked, 0 errors" in capsys.readouterr().out
    recs = consume_all(cfg, "clickstream")
    assert len(recs) == 3000 and {r.partition for r in recs} == {0, 1, 2}
    events = [json.loads(r.value) for r in recs]
    assert all(r.key.decode() == e["user_id"] for r, e in zip(recs, events))
    assert len({e["event_id"] for e in events}) == 3000
    assert all(contracts.validation_errors("clickstream", e) == [] for e in events[::10])
    # Same key -> same partition, and within it the order the user produced them in.
    per_key = defaultdict(list)
    for r, e in sorted(zip(recs, events), key=lambda x: (x[0].partition, x[0].offset)):
        per_key[e["user_id"]].append((r.partition, e["event_time"]))
    for rows in per_key.values():
        assert len({p for p, _ in rows}) == 1
        assert [t for _, t in rows] == sorted(t for _, t in rows)
    assert min(e["event_time"] for e in events) >= "2026-11-22T08:00:00.000Z"


def test_telemetry_with_every_fault_kind_marked_in_headers(cfg, broker_conf, capsys):
    assert cli(overrides_of(cfg, broker_conf), "produce", "telemetry", "--count", "4000", "--seed", "5",
               "--faults", "0.02", "--quiet") == 0
    out = capsys.readouterr().out
    recs = consume_all(cfg, "telemetry")
    assert len(recs) == 4000
    marked = Counter(dict(r.headers).get(FAULT_HEADER, b"").decode() for r in recs)
    reported = dict(part.rsplit(" ", 1) for part in out.split("faults: ")[1].strip().split(", "))
    assert {k: int(v.replace(",", "")) for k, v in reported.items()} == {k: marked[k] for k in FAULT_KINDS}
    assert set(FAULT_KINDS) <= set(marked) and 4000 * 0.02 * 9 * 0.6 < sum(marked[k] for k in FAULT_KINDS) < 4000 * 0.2 * 1.4
    for r in recs:
        kind = dict(r.headers).get(FAULT_HEADER, b"").decode()
        if kind == "non_utf8":
            with pytest.raises(UnicodeDecodeError):
                r.value.decode()
        elif kind == "oversized":
            assert len(r.value) > 500_000
        elif not kind:
            assert r.key.decode() == json.loads(r.value)["device_id"]


@pytest.mark.process
def test_parallel_processes_send_exactly_the_count(cfg, broker_conf, capsys):
    assert cli(overrides_of(cfg, broker_conf), "produce", "clickstream", "--count", "12000", "--processes", "2",
               "--users", "800", "--quiet") == 0
    assert "12,000 of 12,000 acked" in capsys.readouterr().out
    recs = consume_all(cfg, "clickstream")
    events = [json.loads(r.value) for r in recs]
    assert len(recs) == 12000 and len({e["event_id"] for e in events}) == 12000
    assert all(r.key.decode() == e["user_id"] for r, e in zip(recs, events))


def test_paced_rate_follows_the_wall_clock(cfg, broker_conf, capsys):
    t0 = time.time()
    assert cli(overrides_of(cfg, broker_conf), "produce", "telemetry", "--rate", "400", "--duration", "4",
               "--quiet") == 0
    elapsed = time.time() - t0
    recs = consume_all(cfg, "telemetry")
    assert 0.7 * 400 * 4 <= len(recs) <= 1.15 * 400 * 4 and elapsed >= 4
    skew = [abs(parse_ms(json.loads(r.value)["event_time"]) - r.timestamp) for r in recs]
    assert max(skew) < 2000  # event time tracks the real time of sending


def test_unavailable_compression_fails_at_start_up(cfg, broker_conf, capsys):
    from kafka import codec

    if codec.has_zstd():
        pytest.skip("zstandard is installed here")
    assert cli(overrides_of(cfg, broker_conf), "produce", "clickstream", "--count", "10", "--compression", "zstd") == 2
    assert "producer.compression zstd needs the Python package 'zstandard'" in capsys.readouterr().err


def test_reference_create_writes_the_dimension_tables(spark, cfg, broker_conf, capsys):
    from kappalake.pipelines.reference import write_reference_tables

    assert write_reference_tables(spark, cfg) == {"dim.products": 200, "dim.zones": 12, "dim.bandwidth_plans":
                                                   len(reference_rows(cfg)["bandwidth_plans"])}
    write_reference_tables(spark, cfg)  # re-running replaces, never appends
    products = spark.read.format("delta").load(cfg.lake.table_path("dim.products"))
    assert products.count() == 200
    assert {tuple(sorted(r.asDict().items())) for r in products.collect()} == \
        {tuple(sorted({**r, "base_price": Decimal(str(r["base_price"]))}.items())) for r in reference_rows(cfg)["products"]}
    plans = spark.read.format("delta").load(cfg.lake.table_path("dim.bandwidth_plans"))
    assert plans.select("country", "city").distinct().count() == 24
    history = spark.sql(f"DESCRIBE HISTORY delta.`{cfg.lake.table_path('dim.zones')}`").count()
    assert history >= 2
