"""The benchmark harness runs end to end and its figures add up.

Only the harness is checked here, never the speed: the figures come from real runs on the
test broker, so each stage must have produced rows, latencies and samples that agree with
what it fed. Every stage runs on the suite's session with a tiny plan; ``kappalake bench`` as
a user starts it (its own JVM, the table, the JSON) runs once with the smallest stage.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kappalake.bench.harness import Plan, render, run
from kappalake.config import load_config
from tests.conftest import CONF_DIR, REPO, as_yaml

# As small as each stage's checks allow: the soak samples every 2 s (5 samples wanted), alerts
# run hot from the start of each 40 s period, feeds slow enough that seven queries on the
# suite's two task slots drain them in seconds. The latency run lasts 8 s: its first 2 s are
# warm-up, and on a loaded machine the feed's first batch also carries the rows of its start-up
# (a 6 s run measured 199 of 400 fed rows, one short of the half the test asks for).
TINY = Plan(events=1_000, pool=500, latency_rate=100, latency_s=8, hop_s=8, alert_rate=100, alert_s=6, offer_rate=20, offer_s=4,
            soak_rate=100, soak_s=12, warmup_s=2)


def test_bench_measures_every_stage(spark, broker_conf, tmp_path):
    # One telemetry partition: the continuous alert query holds one of the session's two task slots.
    cfg = load_config("local", CONF_DIR, overrides={**broker_conf, "spark.master": "local[2]",
                                                     "spark.shuffle_partitions": 2, "topics.telemetry.partitions": 1})
    out = tmp_path / "result.json"
    returned = run(cfg, TINY, None, tmp_path / "ws", out, quick=True, spark=spark)
    r = json.loads(out.read_text())
    assert r["summary"] == returned["summary"] and "full_events_per_s" in render(returned)
    s = r["stages"]
    assert r["errors"] == {} and set(s) == {"preload", "limit", "passthrough", "full", "floor", "quality", "latency", "hop",
                                       "alerts", "offers", "soak"}
    events = r["plan"]["events"]

    # Throughput: every preloaded event read by each stage, rates from real time.
    assert s["preload"]["events"] == events
    assert s["limit"]["rows"] == events and s["passthrough"]["rows"] == events
    assert s["full"]["pipelines"]["bronze_clickstream"]["rows"] == events
    # Silver + quarantine hold every event but the resends the pool injected (deduplicated).
    assert 0.97 * events <= s["full"]["silver_plus_quarantine"] <= events
    # The stamped copies stay valid events: only the pool's injected faults are quarantined.
    assert s["full"]["quarantine"] < 0.05 * events
    assert s["full"]["pipelines"]["gold_page_minute"]["rows"] == s["full"]["silver"]
    for stage in ("limit", "passthrough"):  # (seconds rounded to the ms, rates to 0.1)
        sec = s[stage]["seconds"]
        assert events / (sec + 0.0005) - 0.05 <= s[stage]["rows_per_s"] <= events / (sec - 0.0005) + 0.05, s[stage]
    assert s["quality"]["with_expectations"]["rows"] == s["quality"]["without_expectations"]["rows"] == events
    sv = s["full"]["pipelines"]["silver_clickstream"]
    assert s["full"]["silver_rows_per_s"] == round(sv["rows"] / sv["seconds"], 1) and sv["rows"] == events
    # The bare-Spark floor read all of bronze; deduplicating on the event id dropped the pool's resends
    # (and every row without one but the first: it has no quarantine).
    fl = s["floor"]
    assert fl["from_json"]["rows"] == fl["dedup"]["rows"] == fl["from_json"]["rows_written"] == events
    assert 0.9 * events < fl["dedup"]["rows_written"] < events
    assert fl["contract"]["rows"] == fl["contract"]["rows_written"] == events  # every row, faults too, with its codes

    # Latency: measured on the rows the feed sent after warm-up, from the change feed's commit times.
    lat = s["latency"]
    assert lat["events_fed"] > 0.5 * r["plan"]["latency_rate"] * r["plan"]["latency_s"]
    k = lat["latency_ms"]["from_kafka"]
    assert k["count"] > 0.5 * lat["events_fed"] and 0 < k["p50"] <= k["p95"] <= k["p99"] <= k["max"]
    assert lat["drain_s"] is not None
    b = lat["bronze_latency_ms"]["from_kafka"]  # the first hop: bronze was visible before silver
    assert b["count"] >= k["count"] and 0 < b["p50"] <= k["p50"]
    hop = s["hop"]  # a bare Kafka -> Delta stream alone
    assert hop["latency_ms"]["from_kafka"]["count"] > 0.5 * hop["events_fed"] and "bronze_latency_ms" not in hop

    # Alert paths: hot readings were flagged by the continuous query, each flag timed.
    al = s["alerts"]
    # (the simulator's own readings beyond a hard limit are flagged too)
    assert al["hot_readings"] > 0 and al["continuous_ms"]["count"] > 0
    assert al["continuous_ms"]["p50"] > 0

    # Offers: every sign-up produced got its offer on the topic, each delay timed from the two topics.
    of = s["offers"]
    assert of["signups"] == 80 and of["offers"] == 80 and of["offer_messages"] >= 80
    assert of["latency_ms"]["count"] > 0 and 0 < of["latency_ms"]["p50"] <= of["latency_ms"]["p95"]

    # Soak: memory and state sampled all along; gold state exists and is counted.
    soak = s["soak"]
    assert len(soak["samples"]) >= 5 and all(x["driver_jvm_rss_mib"] for x in soak["samples"])
    assert soak["memory"]["broker_rss_mib"]["max"] > 0 and soak["memory"]["state_rows"]["max"] > 0

    # The summary judges each target from those figures, and the table names them.
    t = r["summary"]["targets"]
    assert t["full_events_per_s"]["measured"] == s["full"]["events_per_s"]
    assert t["silver_vs_limit"]["measured"] == round(s["full"]["silver_rows_per_s"] / s["limit"]["rows_per_s"], 3)
    assert r["summary"]["figures"]["hop_alone_p95_ms"] == hop["latency_ms"]["from_kafka"]["p95"]
    assert all(v["met"] in (True, False) for v in t.values())
    assert r["machine"]["cores"] and r["machine"]["versions"]["pyspark"]


@pytest.mark.process
def test_bench_command_prints_the_table_and_writes_the_json(broker_conf, tmp_path):
    config = as_yaml({**broker_conf, "spark.shuffle_partitions": 2}, tmp_path / "bench.yaml")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), "--config", str(config),
         "--set", "spark.conf.spark.ui.enabled=false", "--set", f"spark.conf.spark.sql.warehouse.dir={tmp_path / 'wh'}",
         "bench", "--quick", "--only", "limit", "--events", "1000",
         "--out", str(out), "--workspace", str(tmp_path / "ws")],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    r = json.loads(out.read_text())
    assert r["errors"] == {} and set(r["stages"]) == {"preload", "limit"} and r["quick"]
    assert r["stages"]["limit"]["rows"] == r["stages"]["preload"]["events"] == 1000
    assert r["machine"]["cores"] and r["machine"]["versions"]["pyspark"]
    assert "limit_rows_per_s" in proc.stdout and f"result: {out}" in proc.stdout
