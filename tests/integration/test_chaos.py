"""`kappalake chaos`, shortened, as a user runs it: SIGKILLs at three chosen points;
afterwards the lake holds every event Kafka accepted once.

The other scenarios are left to `kappalake chaos` itself (each costs 5-12 min more on 2 cores);
CI covers what they prove elsewhere: test_restarts (a stream waiting through a broker outage,
one failing fast naming Kafka, random SIGKILLs), test_reprocess / test_operations (reprocess,
OPTIMIZE and VACUUM while streaming) and test_outages (the full-disk and permission messages).
The disk_full scenario passed in a fresh-clone `.ci/run` of c6ef478."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import CONF_DIR, REPO, broker_overrides

SCENARIOS = ["kills"]
# The module's one chaos run (~9 min on 2 cores) happens in the first test's setup.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    """One shortened run of the scenarios on a private broker."""
    tmp = tmp_path_factory.mktemp("chaos")
    sets = [a for k, v in broker_overrides(tmp / "broker").items() for a in ("--set", f"{k}={v}")]
    out = tmp / "chaos.json"
    cmd = [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), *sets, "chaos", "--topic", "clickstream", "--kills", "3",
           *[a for s in SCENARIOS for a in ("--scenario", s)], "--rate", "30", "--workdir", str(tmp / "work"), "--out", str(out)]
    # Its own session: whatever stops this test also takes down the job and broker it started.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=2100)
    finally:
        if proc.poll() is None:  # it stops its jobs and broker on SIGTERM
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    printed = stdout + stderr[-3000:]
    results = {s["scenario"]: s for s in json.loads(out.read_text())["scenarios"]} if out.exists() else {}
    return proc.returncode, printed, results


def _checks(result, kind):
    return [c for c in result["checks"] if c["check"] == kind]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_after_each_scenario_every_event_is_in_the_lake_once(chaos, scenario):
    rc, printed, results = chaos
    r = results.get(scenario)
    assert r is not None, printed
    assert r["ok"], (r["notes"], [c for c in r["checks"] if not c["ok"]], printed)
    assert sum(r["events"].values()) > 0
    bronze, silver, gold, delta = (_checks(r, k) for k in ("bronze", "silver", "gold", "delta"))
    assert len(bronze) == len(silver) == len(gold) == 1 and len(delta) == 4  # bronze, silver, quarantine, gold
    for c in bronze:
        f = c["figures"]
        assert f["rows"] == f["kafka_offsets"] > 0 and f["duplicates"] == f["missing"] == 0
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
    _, printed, results = chaos
    kills = results["kills"]["kills"]
    # (Random kills are test_restarts' SIGKILL test.)
    assert [k["point"] for k in kills] == ["offsets", "delta_commit", "commits"], printed
    # Each watched kill fired on a new file (or its temp file) of the batch being written.
    assert all(k["seen"] for k in kills), kills


def test_the_command_prints_a_table_per_scenario(chaos):
    rc, printed, _ = chaos
    assert rc == 0, printed
    for s in SCENARIOS:
        assert any(line.startswith(s) for line in printed.splitlines()), printed
