"""Alerts end to end on the real broker: the hot-truck scenario through bronze -> silver -> the
detector, into ops.alerts, onto the alerts topic and to a webhook; and the continuous fast path."""

from __future__ import annotations

import json
import re
import time

import pytest
from pyspark.sql import functions as F

from kappalake.alerts.tail import follow
from kappalake.config import TriggerConf
from kappalake.ingest.producer import ProduceSpec, make_producer, records, send_records
from kappalake.ingest.topics import ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.plan import with_upstream
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from tests.conftest import make_config
from tests.unit.test_notifiers import Receiver

AVAILABLE_NOW = TriggerConf(available_now=True)
SPAN_S, VEHICLES = 240, 6
# hot-truck over 240 s: truck-0000 engine +25 C from 60 s for 45 s; reefer-0005 cargo +10 C from
# 132 s for 30 s; truck-0001 engine +25 C from 96 s for 4 s (too short to alert).


def hot_truck_records(cfg, seed: int = 11):
    start_ms = (int(time.time()) - SPAN_S - 60) * 1000
    spec = ProduceSpec("telemetry", count=SPAN_S * VEHICLES, span=SPAN_S, seed=seed, start_ms=start_ms,
                       devices=VEHICLES, people=0, scenario="hot-truck")
    return list(records(cfg, spec)), start_ms


def send(cfg, recs) -> None:
    producer = make_producer(cfg.kafka_settings, cfg.producer)
    try:
        stats = send_records(producer, cfg.topic_name("telemetry"), recs)
    finally:
        producer.close()
    assert stats.acked == len(recs)


@pytest.fixture(scope="module")
def alerted(spark, broker_conf, tmp_path_factory):
    """The scenario produced in two parts, the pipelines run to completion after each (a restart
    in the middle of the reefer's episode), then once more with nothing new."""
    receiver = Receiver()
    cfg = make_config(broker_conf, tmp_path_factory.mktemp("alerts"), **{
        "alerts.notifiers": [{"type": "webhook", "url": receiver.url}, {"type": "log"}]})
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["telemetry"]))  # the pipelines create the alerts topic they write to
    write_reference_tables(spark, cfg)
    recs, start_ms = hot_truck_records(cfg)
    split = start_ms + 145_000  # the reefer's cargo has been warm for 13 s
    names = with_upstream(cfg.pipelines, ["alerts_telemetry"])
    runs = []
    for part in ([r for r in recs if r.due_ms < split], [r for r in recs if r.due_ms >= split], []):
        if part:
            send(cfg, part)
        runs.append({r.pipeline: r for r in run_pipelines(spark, cfg, names, trigger=AVAILABLE_NOW, timeout=600)})
    yield cfg, runs, receiver
    receiver.close()


def test_hot_truck_alerts_once_per_episode_in_the_table(spark, alerted):
    cfg, runs, _ = alerted
    alerts = spark.read.format("delta").load(cfg.lake.table_path("ops.alerts"))
    got = sorted((r["entity"], r["metric"], r["event"], r["reason"]) for r in alerts.collect())
    assert got == [("reefer-0005", "cargo_temp_c", "close", "back_in_band"),
                   ("reefer-0005", "cargo_temp_c", "open", "above_max"),
                   ("truck-0000", "engine_temp_c", "close", "back_in_band"),
                   ("truck-0000", "engine_temp_c", "open", "above_max")]
    closes = {r["entity"]: r for r in alerts.filter(F.col("event") == "close").collect()}
    assert 35 <= closes["truck-0000"]["duration_s"] <= 50 and closes["truck-0000"]["peak"] > 110
    assert 20 <= closes["reefer-0005"]["duration_s"] <= 35 and closes["reefer-0005"]["peak"] > 12
    # one id per episode, shared by its open and close
    assert alerts.groupBy("alert_id").count().filter("count != 2").count() == 0
    # the reefer's episode was open across the restart: opened in the first run, closed in the second
    assert runs[0]["alerts_telemetry"].input_rows > 0 and runs[2]["alerts_telemetry"].input_rows == 0


def test_same_alerts_on_the_topic_keyed_by_entity(spark, alerted):
    cfg, _, _ = alerted
    table = {(r["alert_id"], r["event"]) for r in spark.read.format("delta").load(cfg.lake.table_path("ops.alerts")).collect()}
    messages = list(follow(cfg.kafka_settings, cfg.topic_name("alerts"), from_beginning=True, timeout_s=3))
    assert {(m["alert_id"], m["event"]) for _, m in messages} == table
    assert len(messages) == len(table)  # nothing replayed: no crash happened
    assert all(key == m["entity"] for key, m in messages)
    opened = next(m for _, m in messages if m["event"] == "open" and m["entity"] == "truck-0000")
    assert opened["kind"] == "temperature" and opened["severity"] == "critical" and opened["high"] == 100.0


def test_webhook_got_every_alert_and_deliveries_are_recorded(spark, alerted):
    cfg, _, receiver = alerted
    table = {(r["alert_id"], r["event"]) for r in spark.read.format("delta").load(cfg.lake.table_path("ops.alerts")).collect()}
    assert sorted(h["Idempotency-Key"] for h, _ in receiver.received) == sorted(f"{a}:{e}" for a, e in table)
    deliveries = spark.read.format("delta").load(cfg.lake.table_path("ops.alert_deliveries"))
    got = sorted((r["notifier"], r["status"], r["pipeline"]) for r in deliveries.collect())
    assert got == sorted([("webhook", "delivered", "alerts_telemetry"), ("log", "delivered", "alerts_telemetry")] * 4)


def test_continuous_fast_path_flags_readings_over_hard_limits(spark, broker_conf, tmp_path):
    # One telemetry partition: the continuous query holds one of the session's two task slots.
    cfg = make_config(broker_conf, tmp_path, **{"topics.telemetry.partitions": 1})
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["telemetry"]))  # the pipelines create the alerts topic they write to
    query = start_pipeline(spark, cfg.pipeline("alerts_fast"))
    try:
        assert query.isActive
        recs, _ = hot_truck_records(cfg, seed=12)
        sent_at = time.time()
        send(cfg, recs)
        hot = [r for r in recs if r.value.get("engine_temp_c", 0) > 110
               or (r.value.get("vehicle_type") == "reefer_truck" and r.value.get("cargo_temp_c", 0) > 12)]
        flags = list(follow(cfg.kafka_settings, cfg.topic_name("alerts"), from_beginning=True, max_messages=len(hot), timeout_s=60))
        elapsed = time.time() - sent_at
    finally:
        query.stop()
    assert hot and {(m["entity"], m["metric"]) for _, m in flags} >= {("truck-0000", "engine_temp_c"),
                                                                     ("reefer-0005", "cargo_temp_c")}
    # at-least-once: every flagged reading arrived (a retried epoch could repeat some)
    assert {m["alert_id"] for _, m in flags} == {r.value["event_id"] for r in hot}, elapsed
    assert all(m["event"] == "flag" and m["kind"] == "hard_limit" and key == m["entity"] for key, m in flags)


def test_alerts_tail_cli_prints_one_line_per_alert(alerted, broker_conf, capsys):
    from kappalake.cli import main

    cfg, _, _ = alerted
    sets = [f"{k}={v}" for k, v in broker_conf.items()] + [f"topics.alerts.name={cfg.topic_name('alerts')}"]
    argv = [a for s in sets for a in ("--set", s)]
    assert main(argv + ["alerts", "tail", "--from-beginning", "--max", "4", "--timeout", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and sum("truck-0000" in line and "engine_temp_c" in line for line in lines) == 2
    assert any(re.search(r" open .* above_max \(band \.\.100, 1\d s\) \[", line) for line in lines), lines
    assert main(argv + ["alerts", "tail", "--from-beginning", "--json", "--timeout", "2"]) == 0
    assert len([json.loads(line) for line in capsys.readouterr().out.splitlines()]) == 4
    assert main(argv + ["alerts", "tail", "--topic", "nope"]) == 2
