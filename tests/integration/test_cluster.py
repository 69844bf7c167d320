"""The job on a real Spark cluster: a standalone master and two workers, each its own JVM, the
package shipped by spark-submit.sh as on EMR; a worker SIGKILLed mid-stream and restarted, the
job stopped with SIGTERM; a reprocess through the same script on the cluster; then `verify`:
nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from kappalake.config import load_config
from kappalake.errors import CheckpointError
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import ensure_topics
from kappalake.lake.tables import read_table
from kappalake.ops.cluster import LocalCluster
from kappalake.ops.consistency import format_checks, verify_lake
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.checkpoints import delta_source_version
from tests.conftest import CONF_DIR, REPO, as_yaml, config_values, free_port
from tests.lake_checks import later_copies, table

pytestmark = pytest.mark.process  # the cluster's daemons and spark-submit, as a user runs them
SCRIPT = REPO / "spark-submit.sh"
KAPPALAKE = REPO / ".venv/bin/kappalake"
PIPELINES = ["bronze_telemetry", "silver_telemetry", "gold_device_minute", "alerts_telemetry"]
EVENTS = 2000


def _get(url: str):
    # The job's driver answers its REST API from a loaded machine (two workers, the broker and
    # this session's Spark on two cores): a fresh clone on a slower machine timed out at 5 s.
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.load(r)


def _remote_with_tasks(executors: list[dict]) -> list[dict]:
    return [e for e in executors if e["id"] != "driver" and e["totalTasks"] > 0]


def _wait(what: str, ready, timeout: float, job: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert job.poll() is None, f"the job exited ({job.returncode}) waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
        time.sleep(1)


def _rows(spark, cfg, table: str) -> int:
    """Rows of ``table`` now (0 while it does not exist)."""
    df = read_table(spark, cfg.lake.table_path(table))
    return 0 if df is None else df.count()


def _caught_up(spark, cfg) -> bool:
    """Every record in bronze, and each pipeline reading a table has read its newest version."""
    if _rows(spark, cfg, "bronze.telemetry") < EVENTS:
        return False
    for name in PIPELINES[1:]:
        spec = cfg.pipeline(name)
        try:
            done = delta_source_version(spark, spec)
        except CheckpointError:  # part-way through a version
            return False
        newest = DeltaTable.forPath(spark, spec.source_path).history(1).select("version").first()[0]
        if done is None or done < newest:
            return False
    return True


def test_a_worker_lost_mid_stream_costs_nothing(spark, broker_conf, tmp_path):
    ui = free_port()
    values = config_values(broker_conf, tmp_path, **{
        "cluster.dir": str(tmp_path / "cluster"), "cluster.port": free_port(), "cluster.webui_port": free_port(),
        "spark.shuffle_partitions": 4, "spark.conf.spark.ui.enabled": "true", "spark.conf.spark.ui.port": str(ui),
        "spark.conf.spark.executor.memory": "1g",
        # Catching up takes a batch per layer: shorter intervals than the profile's 5 and 10 s.
        "pipelines.silver_telemetry.trigger.processing_time": "2 seconds",
        "pipelines.gold_device_minute.trigger.processing_time": "2 seconds"})
    cfg = load_config("local", CONF_DIR, overrides=values)
    job_conf = as_yaml(values, tmp_path / "job.yaml")
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["telemetry", "alerts"]))
    write_reference_tables(spark, cfg)
    cluster = LocalCluster(cfg.cluster)
    started = subprocess.run([str(KAPPALAKE), "--config", str(job_conf), "cluster", "start"], capture_output=True,
                             text=True, timeout=240)
    assert started.returncode == 0 and "2 workers" in started.stdout, started.stdout + started.stderr
    log = tmp_path / "job.log"
    job = None
    try:
        with open(log, "w") as out:
            args = [a for n in PIPELINES for a in ("--pipeline", n)]
            job = subprocess.Popen([str(SCRIPT), "--master", cluster.master_url, "--", "--config", str(job_conf),
                                    "ingest", *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                   start_new_session=True)
        # Events arrive while the job streams: ~20 s of them, with every fault kind.
        sent = {}
        feed = threading.Thread(target=lambda: sent.update(stats=produce(cfg, ProduceSpec(
            "telemetry", count=EVENTS, rate=100, seed=31, devices=20, people=300, faults=FaultRates.uniform(0.01)))))
        _wait("bronze table", lambda: read_table(spark, cfg.lake.table_path("bronze.telemetry")) is not None, 240, job, log)
        feed.start()
        _wait("silver rows", lambda: _rows(spark, cfg, "silver.telemetry") > 0, 240, job, log)
        app = _get(f"http://127.0.0.1:{ui}/api/v1/applications")[0]["id"]
        before = {e["id"]: e for e in _get(f"http://127.0.0.1:{ui}/api/v1/applications/{app}/allexecutors")}
        killed = cluster.kill_worker(1)  # a lost machine: its executor goes with it
        restarted = cluster.start()
        assert restarted.running and restarted.worker_pids[1] not in (None, killed)
        feed.join(timeout=120)
        assert sent["stats"].acked == EVENTS and not sent["stats"].errors
        _wait("the job to catch up", lambda: _caught_up(spark, cfg), 300, job, log)
        executors_url = f"http://127.0.0.1:{ui}/api/v1/applications/{app}/allexecutors"
        # The restarted worker's executor starts in its own JVM; on a slow machine the job can
        # catch up on the remaining one before it has run a task (the stream goes on meanwhile).
        _wait("tasks in the lost executor's replacement",
              lambda: len(_remote_with_tasks(_get(executors_url))) >= 3, 240, job, log)
        executors = _get(executors_url)
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=120) == 0, log.read_text()[-3000:]
        # The batch side on the cluster: a reprocess of what the stream wrote changes nothing but
        # the copy kept of a resent event whose later copy the stream read first (a batch keeps
        # the earliest).
        later = later_copies(spark, cfg, table(spark, cfg, "silver.telemetry"), "telemetry")
        batch = subprocess.run([str(SCRIPT), "--master", cluster.master_url, "--", "--config", str(job_conf),
                                "reprocess", "--table", "silver.telemetry"], capture_output=True, text=True,
                               timeout=600, cwd=REPO)
        assert batch.returncode == 0, batch.stdout[-3000:] + batch.stderr[-3000:]
        changed = f"{later} new or changed, {later} gone" + ("; unchanged: nothing written" if not later else "")
        assert changed in batch.stdout, (later, batch.stdout)
    finally:
        if job is not None:
            try:  # whatever of the job is left: the script, spark-submit's JVM, the driver
                os.killpg(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cluster.stop()

    # The tasks ran in the workers' executors, not in the driver; the lost worker's executor was
    # replaced by one on the restarted worker, and its failed tasks ran again elsewhere.
    remote = [e for e in executors if e["id"] != "driver"]
    assert len(_remote_with_tasks(executors)) >= 3, executors
    assert any(not e["isActive"] for e in remote) and len(remote) > len([k for k in before if k != "driver"]), executors
    assert next(e for e in executors if e["id"] == "driver")["totalTasks"] == 0, executors
    work = list((tmp_path / "cluster").glob("worker-*/app-*/*/stderr"))
    assert len(work) >= 3, work  # each executor's own log in its worker's work directory

    checks = verify_lake(spark, cfg, PIPELINES)
    assert checks and all(c.ok for c in checks), format_checks(checks)
    assert {c.check for c in checks} >= {"bronze", "silver", "gold"}, format_checks(checks)
