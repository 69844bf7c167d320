"""The chaos harness, shortened: its kills scenario with SIGKILLs of the job process at three
chosen points; afterwards the lake holds every event Kafka accepted once. The harness runs on
the suite's session and broker (the jobs it kills are processes, as always); `kappalake chaos`
as a user runs it is checked once, on a scenario it skips at once.

The other scenarios are left to `kappalake chaos` itself (each costs 5-12 min more on 2 cores);
CI covers what they prove elsewhere: test_restarts (a stream waiting through a broker outage,
one failing fast naming Kafka, random SIGKILLs), test_reprocess / test_operations (reprocess,
OPTIMIZE and VACUUM while streaming) and test_outages (the full-disk and permission messages).
The disk_full scenario passed in a fresh-clone `.ci/run` of c6ef478."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from kappalake.ops.chaos import Chaos, summary_table
from kappalake.ops.chaos_job import ConfigSource
from tests.conftest import CONF_DIR, REPO

SCENARIOS = ["kills"]
pytestmark = [pytest.mark.process, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def chaos(spark, broker_conf, tmp_path_factory):
    """One shortened run of the scenarios on the suite's broker and session."""
    tmp = tmp_path_factory.mktemp("chaos")
    # The jobs it kills run on two task slots and shuffle partitions, as the suite's session does.
    jobs = {**broker_conf, "spark.master": "local[2]", "spark.shuffle_partitions": 2, "spark.conf.spark.ui.enabled": "false"}
    source = ConfigSource("local", str(CONF_DIR), [], [f"{k}={v}" for k, v in jobs.items()])
    printed: list[str] = []
    harness = Chaos(source, tmp / "work", kills=3, rate=30, topics=["clickstream"], say=printed.append, spark=spark)
    try:
        results = harness.run(SCENARIOS)
    finally:
        harness.close()
    return "\n".join([*printed, summary_table(results)]), {r.scenario: asdict(r) for r in results}


def _checks(result, kind):
    return [c for c in result["checks"] if c["check"] == kind]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_after_each_scenario_every_event_is_in_the_lake_once(chaos, scenario):
    printed, results = chaos
    r = results.get(scenario)
    assert r is not None, printed
    assert r["ok"], (r["notes"], [c for c in r["checks"] if not c["ok"]], printed)
    assert sum(r["events"].values()) > 0
    bronze, silver, gold, delta = (_checks(r, k) for k in ("bronze", "silver", "gold", "delta"))
    assert len(bronze) == len(silver) == len(gold) == 1 and len(delta) == 4  # bronze, silver, quarantine, gold
    for c in bronze:
        f = c["figures"]
        assert f["rows"] == f["kafka_records"] > 0 and f["duplicates"] == f["missing"] == f["not_in_kafka"] == 0
    # Kafka accepted every event the feed counted; bronze may hold more (a send that failed
    # client-side after the broker had written it), never fewer.
    assert sum(c["figures"]["rows"] for c in bronze) >= sum(r["events"].values())
    for c in silver:
        f = c["figures"]
        assert f["bronze_rows"] == f["rows"] + f["quarantined"] + f["resends_dropped"] and f["rows"] > 0
        assert f["lost"] == f["duplicate_events"] == f["in_both"] == f["not_in_bronze"] == 0
    for c in gold:
        assert c["figures"]["differ"] == c["figures"]["batch_only"] == 0 and c["figures"]["rows"] > 0
    for c in delta:
        assert c["figures"]["unreadable"] == c["figures"]["dangling"] == 0 and c["figures"]["versions"] > 1


def test_kills_land_at_the_chosen_points(chaos):
    printed, results = chaos
    kills = results["kills"]["kills"]
    # (Random kills are test_restarts' SIGKILL test.)
    assert [k["point"] for k in kills] == ["offsets", "delta_commit", "commits"], printed
    # Each watched kill fired on a new file (or its temp file) of the batch being written.
    assert all(k["seen"] for k in kills), kills


def test_the_command_prints_a_table_per_scenario(chaos, broker_conf, tmp_path):
    printed, _ = chaos
    for s in SCENARIOS:
        assert any(line.startswith(s) for line in printed.splitlines()), printed
    # The command as a user runs it, on an external cluster (here: the suite's broker), whose
    # broker scenario it skips: nothing it does not run is stopped.
    out = tmp_path / "chaos.json"
    cmd = [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), "--set", "broker.mode=external",
           "--set", f"kafka.bootstrap_servers=127.0.0.1:{broker_conf['broker.port']}",
           "--set", "spark.conf.spark.ui.enabled=false", "chaos", "--scenario", "broker",
           "--workdir", str(tmp_path / "work"), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("scenario") for line in lines) and any(line.startswith("broker") and "skipped" in line
                                                                      for line in lines), proc.stdout
    assert "broker: skipped: broker.mode is external" in proc.stdout and f"results: {out}" in proc.stdout
    [result] = json.loads(out.read_text())["scenarios"]
    assert result["scenario"] == "broker" and result["ok"] is None
