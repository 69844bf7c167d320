"""Exactly-once across crashes: a SIGKILLed driver and a restarted broker lose and duplicate nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kappalake.config import TriggerConf, load_config
from kappalake.errors import PipelineError
from kappalake.ingest.broker import LocalBroker
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import admin_client, end_offsets, ensure_topics
from kappalake.pipelines.runner import run_pipelines
from tests.conftest import CONF_DIR, REPO, as_yaml, broker_overrides, config_values, make_config
from tests.lake_checks import assert_exactly_once

AVAILABLE_NOW = TriggerConf(available_now=True)


def _delta_commits(table: str) -> int:
    log = Path(table) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def _job_configs(broker_conf: dict, tmp_path: Path) -> tuple:
    """The killed job's config (300 offsets per micro-batch, so it is killed amid many batches),
    the YAML file its process reads, and the in-process restart's config: the same topics, lake
    and checkpoints, reading what is left in one batch (the batch a kill cut short is replayed
    with the offsets its log recorded either way)."""
    values = config_values(broker_conf, tmp_path, **{"pipelines.bronze_clickstream.source.max_offsets_per_trigger": 300})
    restart = {**values, "pipelines.bronze_clickstream.source.max_offsets_per_trigger": 200_000}
    return (load_config("local", CONF_DIR, overrides=values), as_yaml(values, tmp_path / "overrides.yaml"),
            load_config("local", CONF_DIR, overrides=restart))


def _start_ingest_process(overrides_file: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), "--config", str(overrides_file),
           "ingest", "--pipeline", "bronze_clickstream", "--processing-time", "500 milliseconds"]
    # Own session: SIGKILL to the group takes down the Python driver and its JVM at once.
    return subprocess.Popen(cmd, cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.process
def test_sigkill_mid_stream_then_restart_keeps_one_row_per_offset(spark, broker_conf, tmp_path):
    cfg, overrides_file, restart = _job_configs(broker_conf, tmp_path)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    table = cfg.lake.table_path("bronze.clickstream")
    total = 0

    # Events keep arriving while the driver is killed twice at random points of its batches.
    producer_done = threading.Event()
    sent: list[int] = []

    def keep_producing() -> None:
        for i in range(8):
            sent.append(produce(cfg, ProduceSpec("clickstream", count=1_000, seed=100 + i, rate=800)).acked)
        producer_done.set()

    threading.Thread(target=keep_producing, daemon=True).start()
    rng = random.Random(42)
    log = tmp_path / "ingest.log"
    for kill in range(2):
        before = _delta_commits(table)
        proc = _start_ingest_process(overrides_file, log)
        deadline = time.monotonic() + 240
        while _delta_commits(table) < before + 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, f"ingest exited early:\n{log.read_text()[-3000:]}"
        assert _delta_commits(table) >= before + 3, f"no progress within 240 s:\n{log.read_text()[-3000:]}"
        time.sleep(rng.uniform(0.0, 1.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    assert producer_done.wait(timeout=120)
    total = sum(sent)
    assert total == 8_000
    # Restart (in-process this time) and let it catch up with everything Kafka holds.
    run_pipelines(spark, restart, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=600)
    assert_exactly_once(spark, cfg, "clickstream", total)


@pytest.mark.process
def test_sigterm_mid_stream_exits_cleanly_and_the_restart_resumes_exactly(spark, broker_conf, tmp_path):
    cfg, overrides_file, restart = _job_configs(broker_conf, tmp_path)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    table = cfg.lake.table_path("bronze.clickstream")
    producer = threading.Thread(target=produce, args=(cfg, ProduceSpec("clickstream", count=3_000, seed=7, rate=600)))
    producer.start()
    log = tmp_path / "ingest.log"
    proc = _start_ingest_process(overrides_file, log)
    deadline = time.monotonic() + 240
    while _delta_commits(table) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None and _delta_commits(table) >= 4, log.read_text()[-3000:]
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # the driver only, as YARN or systemd would
    assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
    took = time.monotonic() - stopped_at
    assert "Traceback" not in log.read_text()
    producer.join(timeout=60)
    from kappalake.ops.status import query_status

    assert {q["pipeline"]: q for q in query_status(spark, cfg)}["bronze_clickstream"]["state"] == "stopped"
    run_pipelines(spark, restart, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=600)
    assert_exactly_once(spark, cfg, "clickstream", 3_000)
    assert took < 60


@pytest.mark.process  # a broker of its own, stopped and started
@pytest.mark.broker
def test_topics_data_and_stream_progress_survive_broker_restart(spark, tmp_path):
    overrides = broker_overrides(tmp_path / "broker")
    cfg = make_config(overrides, tmp_path)
    broker = LocalBroker(cfg.broker)
    broker.start()
    try:
        ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
        produce(cfg, ProduceSpec("clickstream", count=1_000, seed=1))
        [first] = run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
        assert first.input_rows == 1_000

        assert broker.stop() and not broker.status().running
        broker.start()
        assert broker.status().running

        admin = admin_client(cfg.kafka_settings)
        try:
            assert cfg.topic_name("clickstream") in admin.list_topics()
        finally:
            admin.close()
        assert sum(end_offsets(cfg.kafka_settings, cfg.topic_name("clickstream")).values()) == 1_000  # data survived

        produce(cfg, ProduceSpec("clickstream", count=500, seed=2))
        [second] = run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
        assert second.input_rows == 500  # the stream resumed where it was, nothing re-read
        assert_exactly_once(spark, cfg, "clickstream", 1_500)
    finally:
        broker.stop()


@pytest.mark.process  # a broker of its own, stopped and started
@pytest.mark.broker
def test_a_stream_waits_through_a_broker_outage_or_fails_fast_naming_kafka(spark, tmp_path):
    """kafka.outage_wait_s: at 5 s a stream started during an outage fails at once, naming Kafka and
    the key; above the outage it waits, then reads everything once from where the failed run left."""
    values = config_values(broker_overrides(tmp_path / "broker"), tmp_path)
    failing = load_config("local", CONF_DIR, overrides={**values, "kafka.outage_wait_s": 5})
    waiting = load_config("local", CONF_DIR, overrides={**values, "kafka.outage_wait_s": 300})
    broker = LocalBroker(failing.broker)
    comeback = threading.Timer(20, broker.start)
    broker.start()
    try:
        ensure_topics(failing.kafka_settings, failing.topic_specs(["clickstream"]))
        produce(failing, ProduceSpec("clickstream", count=500, seed=1))
        assert broker.stop()
        began = time.monotonic()
        with pytest.raises(PipelineError, match="Kafka was unreachable") as failed:
            run_pipelines(spark, failing, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
        assert "kafka.outage_wait_s" in str(failed.value) and failing.bootstrap_servers in str(failed.value)
        assert time.monotonic() - began < 120

        comeback.start()
        [report] = run_pipelines(spark, waiting, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
        comeback.join()
        assert report.input_rows == 500
        assert_exactly_once(spark, waiting, "clickstream", 500)
    finally:
        comeback.cancel()
        if comeback.is_alive():
            comeback.join()  # a broker it is starting is stopped below, not left running
        broker.stop()
