"""spark-submit.sh: the command line an EMR step would run, and the demo through it, end to end. (The
streaming job and a reprocess through it on a standalone cluster: test_cluster.py.)"""

from __future__ import annotations

import os
import subprocess
import zipfile

import pytest

from tests.conftest import REPO, broker_overrides

pytestmark = pytest.mark.process  # the script, as an EMR step or a user runs it
SCRIPT = REPO / "spark-submit.sh"


def test_emr_command_line():
    env = {**os.environ, "KAPPALAKE_BOOTSTRAP_SERVERS": "b-1.msk.example:9096", "KAPPALAKE_KAFKA_USERNAME": "svc",
           "KAPPALAKE_KAFKA_PASSWORD": "not-in-output", "KAPPALAKE_LAKE_ROOT": "s3://bucket/lake",
           "KAPPALAKE_CHECKPOINT_ROOT": "s3://bucket/checkpoints", "KAPPALAKE_PSEUDONYM_SECRET": "also-not-in-output"}
    out = subprocess.run([str(SCRIPT), "--dry-run", "--profile", "emr", "--master", "yarn", "--deploy-mode", "cluster",
                          "--", "ingest"], env=env, capture_output=True, text=True, check=True).stdout
    assert "--master yarn --deploy-mode cluster" in out
    assert "--packages org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.0 " in out  # Delta comes from the cluster
    assert "delta-spark" not in out
    assert "dist/kappalake.zip" in out and "kappalake-conf.zip#kappalake-conf" in out
    assert out.rstrip().endswith("--profile emr --conf-dir kappalake-conf ingest")
    assert "not-in-output" not in out
    # The driver runs in a YARN container: it gets the profile's variables, secrets masked in print.
    assert "spark.yarn.appMasterEnv.KAPPALAKE_LAKE_ROOT=s3://bucket/lake" in out
    assert "spark.yarn.appMasterEnv.KAPPALAKE_KAFKA_PASSWORD=\\*\\*\\*\\*\\*\\*" in out
    names = zipfile.ZipFile(REPO / "dist/kappalake.zip").namelist()
    assert "kappalake/cli/__init__.py" in names and "kappalake/ingest/broker.py" in names
    # The whole conf directory travels (a user's contracts and libraries live there too).
    conf = sorted(p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)
    assert sorted(zipfile.ZipFile(REPO / "dist/kappalake-conf.zip").namelist()) == conf


def test_missing_emr_environment_fails_fast_naming_the_variable():
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPALAKE_")}
    proc = subprocess.run([str(SCRIPT), "--dry-run", "--profile", "emr", "--", "ingest"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "KAPPALAKE_BOOTSTRAP_SERVERS" in proc.stderr


@pytest.mark.broker  # starts (and stops) a broker of its own
def test_demo_through_spark_submit_locally(tmp_path):
    sets = {**broker_overrides(tmp_path / "broker"), "lake.root": str(tmp_path / "lake"),
            "lake.checkpoint_root": str(tmp_path / "checkpoints"), "spark.conf.spark.ui.enabled": "false"}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    # One gold pipeline (and, with it, the silver and bronze it reads) keeps the run short.
    proc = subprocess.run([str(SCRIPT), "--master", "local[2]", "--", *args, "demo", "--events", "700",
                           "--pipeline", "gold_zone_occupancy"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    rows = {ln.split()[0]: ln.split()[1] for ln in lines if ln.startswith("bronze.")}
    assert rows == {"bronze.telemetry": "700", "bronze.clickstream": "(missing)", "bronze.signups": "(missing)"}, proc.stdout
    gold = {ln.split()[0]: int(ln.split()[1].replace(",", "")) for ln in lines if ln.startswith("gold.zone_occupancy")}
    assert gold["gold.zone_occupancy"] > 0 and "most concentrated zones" in proc.stdout, proc.stdout
    assert "broker stopped" in proc.stdout
    # The warnings quieted at WARN (one per MERGE, one per stream start) stay out of the output.
    assert "locally checkpointed" not in proc.stderr and "ResolveWriteToStream" not in proc.stderr, proc.stderr[-3000:]
