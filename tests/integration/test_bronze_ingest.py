"""Kafka -> bronze against the real broker: every offset lands exactly once."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pyspark.sql import functions as F

from kappalake.config import TriggerConf
from kappalake.ingest.producer import ProduceSpec, produce, records
from kappalake.ingest.simulators.base import to_ms
from kappalake.ingest.topics import ensure_topics
from kappalake.lake.tables import summarize_tables
from kappalake.pipelines.runner import run_pipelines
from tests.lake_checks import assert_exactly_once, bronze

AVAILABLE_NOW = TriggerConf(available_now=True)
BRONZE = ["bronze_clickstream", "bronze_telemetry"]
START = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def test_10k_events_over_3_partitions_land_exactly_once(spark, cfg):
    assert sorted(ensure_topics(cfg.kafka_settings, cfg.topic_specs())) == sorted(cfg.topic_name(t) for t in cfg.topics)
    assert ensure_topics(cfg.kafka_settings, cfg.topic_specs()) == []  # idempotent
    clicks = ProduceSpec("clickstream", count=10_000, seed=1, start_ms=to_ms(START))
    sent = [produce(cfg, clicks), produce(cfg, ProduceSpec("telemetry", count=2_000, seed=2))]
    assert [s.acked for s in sent] == [10_000, 2_000] and not any(s.errors for s in sent)

    reports = run_pipelines(spark, cfg, BRONZE, trigger=AVAILABLE_NOW, timeout=600)
    assert {r.pipeline: r.input_rows for r in reports} == {"bronze_clickstream": 10_000, "bronze_telemetry": 2_000}

    assert_exactly_once(spark, cfg, "clickstream", 10_000)
    assert_exactly_once(spark, cfg, "telemetry", 2_000)
    df = bronze(spark, cfg, "clickstream")
    assert {r[0] for r in df.select("partition").distinct().collect()} == {0, 1, 2}
    # Payloads are byte-identical to what was produced, and keyed by user id.
    produced = {r.value["event_id"]: json.dumps(r.value, separators=(",", ":")).encode() for r in records(cfg, clicks)}
    landed = df.select(F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("id"), "value", "key")
    assert landed.select("id").distinct().count() == 10_000
    sample = {r["id"]: bytes(r["value"]) for r in landed.limit(500).collect()}
    assert all(produced[i] == v for i, v in sample.items())
    mismatched_keys = landed.filter(F.col("key").cast("string") != F.get_json_object(F.col("value").cast("string"), "$.user_id"))
    assert mismatched_keys.count() == 0
    assert df.filter(F.col("kafka_date").isNull() | F.col("ingested_at").isNull()).count() == 0

    # Nothing new in Kafka: a second run writes nothing.
    again = run_pipelines(spark, cfg, BRONZE, trigger=AVAILABLE_NOW, timeout=300)
    assert sum(r.input_rows for r in again) == 0
    landed = {s.table: s.rows for s in summarize_tables(spark, cfg.lake, cfg.tables()) if s.exists}
    assert {t: n for t, n in landed.items() if not t.startswith("ops.")} == {"bronze.clickstream": 10_000,
                                                                             "bronze.telemetry": 2_000}
    assert landed["ops.stream_metrics"] > 0  # the job recorded its batches


def test_micro_batches_respect_max_offsets_per_trigger(spark, broker_conf, tmp_path):
    from tests.conftest import make_config

    cfg = make_config(broker_conf, tmp_path, **{"pipelines.bronze_telemetry.source.max_offsets_per_trigger": 400})
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["telemetry"]))
    produce(cfg, ProduceSpec("telemetry", count=1_500, seed=3))
    [report] = run_pipelines(spark, cfg, ["bronze_telemetry"], trigger=AVAILABLE_NOW, timeout=300)
    assert report.batches >= 4 and report.input_rows == 1_500
    assert_exactly_once(spark, cfg, "telemetry", 1_500)
