"""Routing by rule (Keystone): rows of silver's micro-batches to a Delta table, a Kafka topic and a
latest-state table, split exactly as a batch query over silver says, exactly once in Delta across a
SIGKILL and restart, at least once (with idempotency keys) on the topic; bad routes stop start-up."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from chispa import assert_df_equality
from kafka import KafkaConsumer
from pyspark.sql import functions as F

from kappalake.config import TriggerConf, load_config
from kappalake.errors import ConfigError
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.kafka_clients import python_client_kwargs
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import end_offsets, ensure_topics
from kappalake.ops.consistency import check_route, format_checks, verify_lake
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from tests.conftest import CONF_DIR, REPO, as_yaml, config_values
from tests.lake_checks import table

ORDER_COLUMNS = ["event_id", "event_time", "user_id", "product_id", "price", "quantity", "event_date"]
INCIDENT_COLUMNS = ["event_id", "event_time", "event_type", "app", "page", "error_code", "buffer_ms"]
LATEST_COLUMNS = ["user_id", "event_time", "event_type", "page"]
ROUTES = [
    {"when": "event_type = 'purchase'", "table": "silver.orders", "columns": ORDER_COLUMNS,
     "partition_by": ["event_date"]},
    {"when": "event_type IN ('error', 'buffering')", "topic": "incidents", "key": "app", "columns": INCIDENT_COLUMNS},
    {"table": "serving.user_latest", "mode": "merge", "keys": ["user_id"], "latest_by": "event_time",
     "columns": LATEST_COLUMNS},
]
PIPELINES = ["bronze_clickstream", "silver_clickstream"]


def _values(broker_conf: dict, tmp: Path, **extra) -> dict:
    return config_values(broker_conf, tmp, **{
        "topics.incidents": {"partitions": 2, "replication_factor": 1, "name": f"incidents_{uuid.uuid4().hex[:8]}"},
        "pipelines.silver_clickstream.sink.routes": ROUTES,
        "producer.users": 300, **extra})


def _commits(path: str) -> int:
    log = Path(path) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def _read_topic(cfg, topic: str) -> list:
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000,
                             **python_client_kwargs(cfg.kafka_settings))
    try:
        wanted = sum(end_offsets(cfg.kafka_settings, topic).values())
        got = []
        deadline = time.monotonic() + 60
        while len(got) < wanted and time.monotonic() < deadline:
            got += list(consumer)
        return got
    finally:
        consumer.close()


@pytest.mark.process
def test_routes_split_rows_by_rule_exactly_once_across_a_sigkill(spark, broker_conf, tmp_path):
    values = _values(broker_conf, tmp_path, **{"pipelines.bronze_clickstream.source.max_offsets_per_trigger": 400,
                                               "pipelines.silver_clickstream.source.max_files_per_trigger": 1})
    cfg = load_config("local", CONF_DIR, overrides=values)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream", "incidents"]))
    write_reference_tables(spark, cfg)
    producer = threading.Thread(target=produce, args=(cfg, ProduceSpec(
        "clickstream", count=3_000, seed=31, rate=500, faults=FaultRates.uniform(0.01), users=300)))
    producer.start()

    # The job as a user runs it, killed (driver and JVM at once) once the routes have committed.
    log = tmp_path / "ingest.log"
    cmd = [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), "--config",
           str(as_yaml(values, tmp_path / "overrides.yaml")), "ingest", "--processing-time", "500 milliseconds"]
    cmd += [a for p in PIPELINES for a in ("--pipeline", p)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    latest = cfg.lake.table_path("serving.user_latest")
    deadline = time.monotonic() + 240
    while _commits(latest) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None and _commits(latest) >= 3, log.read_text()[-3000:]
    time.sleep(random.Random(7).uniform(0.0, 2.0))  # somewhere in a batch: before, among or after its writes
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    producer.join(timeout=120)

    # Restarted: it finishes what the killed one began and catches up with Kafka (in larger batches:
    # the batch the kill cut short is replayed with the offsets its log recorded either way).
    restart = load_config("local", CONF_DIR, overrides={**values, **{
        "pipelines.bronze_clickstream.source.max_offsets_per_trigger": 200_000,
        "pipelines.silver_clickstream.source.max_files_per_trigger": None}})
    run_pipelines(spark, restart, PIPELINES, trigger=TriggerConf(available_now=True), timeout=600)
    silver = table(spark, cfg, "silver.clickstream")

    # Delta routes: exactly what a batch query over silver selects, each row once.
    orders = table(spark, cfg, "silver.orders")
    assert orders.count() == orders.select("event_id").distinct().count() > 0
    expected = silver.where("event_type = 'purchase'").select(*ORDER_COLUMNS)
    assert_df_equality(orders, expected, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)
    newest = silver.groupBy("user_id").agg(F.max("event_time").alias("event_time"))
    latest_rows = table(spark, cfg, "serving.user_latest")
    assert latest_rows.count() == latest_rows.select("user_id").distinct().count() == newest.count()
    assert_df_equality(latest_rows.select("user_id", "event_time"), newest, ignore_row_order=True,
                       ignore_nullable=True)
    assert latest_rows.select(*LATEST_COLUMNS).exceptAll(silver.select(*LATEST_COLUMNS)).isEmpty()

    # The topic route: at least once; every message keyed by app, its idempotency key its event id.
    messages = _read_topic(cfg, cfg.topic_name("incidents"))
    wanted = {r.event_id: r for r in silver.where("event_type IN ('error', 'buffering')").collect()}
    seen: dict[str, int] = {}
    for m in messages:
        value = json.loads(m.value)
        assert dict(m.headers)["idempotency-key"].decode() == value["event_id"]
        assert m.key.decode() == value["app"] == wanted[value["event_id"]].app
        assert set(value) == set(INCIDENT_COLUMNS)
        seen[value["event_id"]] = seen.get(value["event_id"], 0) + 1
    assert set(seen) == set(wanted) and wanted

    # `verify` checks the route tables the same way, and sees a row written twice.
    checks = verify_lake(spark, cfg, ["silver_clickstream"], delta=False)
    assert [c.table for c in checks if c.check == "route"] == ["silver.orders", "serving.user_latest"]
    assert all(c.ok for c in checks), format_checks(checks)
    orders.limit(1).write.format("delta").mode("append").save(cfg.lake.table_path("silver.orders"))
    broken = check_route(spark, cfg, "silver_clickstream", 0)
    assert not broken.ok and broken.figures["foreign"] == 1, broken.detail


def test_bad_routes_stop_the_pipeline_at_start_up_naming_the_key(spark, broker_conf, tmp_path):
    values = _values(broker_conf, tmp_path)
    cfg = load_config("local", CONF_DIR, overrides=values)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    write_reference_tables(spark, cfg)
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=TriggerConf(available_now=True), timeout=120)

    def start(route: dict) -> str:
        bad = load_config("local", CONF_DIR, overrides={**values, "pipelines.silver_clickstream.sink.routes": [route]})
        with pytest.raises(ConfigError) as e:
            start_pipeline(spark, bad.pipeline("silver_clickstream"))
        assert not spark.streams.active
        return str(e.value)

    message = start({"when": "event_kind = 'purchase'", "table": "silver.orders"})
    assert message.startswith("pipelines.silver_clickstream.sink.routes[0].when \"event_kind = 'purchase'\"")
    assert "event_kind" in message and "event_type" in message and "\n" not in message
    assert "is a string, not a condition" in start({"when": "page", "table": "silver.orders"})
    assert "routes[0].columns names pirce" in start({"table": "silver.orders", "columns": ["event_id", "pirce"]})
    assert "routes[0].key names application" in start({"topic": "incidents", "key": "application"})
    assert "routes[0].columns must include user_id, event_time" in start(
        {"table": "serving.latest", "mode": "merge", "keys": ["user_id"], "latest_by": "event_time", "columns": ["page"]})
    assert "is not deterministic" in start({"when": "rand() < 0.5", "table": "silver.orders"})
    assert "routes[0].when 'count(*) > 0': [INVALID_WHERE_CONDITION]" in start({"when": "count(*) > 0",
                                                                                 "table": "silver.orders"})
