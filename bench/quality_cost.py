"""Cost of the expectation suites: bronze -> silver throughput with and without them, same run.

    .venv/bin/python bench/quality_cost.py [--events 200000] [--rounds 2]

Writes simulated clickstream (every fault kind at 0.5%, oversized at 0.01%) into a bronze Delta table once, then
runs the silver_clickstream pipeline (availableNow, the real runner: parse, dedup, pseudonymise,
enrich, gate, Delta writes) alternately with the shipped suite and with no suite (the contract
split alone), from a fresh silver table and checkpoint each time. Prints rows/s per run and the
ratio, and writes bench/results/quality_cost.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from kappalake.config import TriggerConf, load_config
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, records
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import QueryReport, run_pipelines
from kappalake.session import get_spark

OUT = Path(__file__).resolve().parent / "results" / "quality_cost.json"
BRONZE = ("key binary, value binary, topic string, partition int, offset long, kafka_timestamp timestamp, "
          "kafka_timestamp_type int, headers array<struct<key:string,value:binary>>, ingested_at timestamp, kafka_date date")


def write_bronze(spark, cfg, n: int) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    rows, chunk = [], 50_000
    path = cfg.lake.table_path("bronze.clickstream")
    # Oversized records (600 KB each) would dominate both variants' parse time; keep a few.
    faults = replace(FaultRates.uniform(0.005), oversized=0.0001)
    spec = ProduceSpec("clickstream", count=n, seed=9, faults=faults, span=n / 50)
    for i, r in enumerate(records(cfg, spec)):
        value = r.value if isinstance(r.value, bytes) else json.dumps(r.value, separators=(",", ":")).encode()
        ts = dt.datetime.fromtimestamp(r.due_ms / 1000, dt.timezone.utc)
        rows.append((r.key.encode(), value, "clickstream", i % 3, i // 3, ts, 0, list(r.headers), now, ts.date()))
        if len(rows) == chunk:
            spark.createDataFrame(rows, BRONZE).write.format("delta").mode("append").partitionBy("kafka_date").save(path)
            rows = []
    if rows:
        spark.createDataFrame(rows, BRONZE).write.format("delta").mode("append").partitionBy("kafka_date").save(path)


def run_silver(spark, cfg, root: Path, on_progress=None) -> tuple[float, QueryReport]:
    """``silver_clickstream`` availableNow from fresh silver, quarantine, ops tables and checkpoint:
    its wall seconds and its report (``on_progress`` gets each batch's progress)."""
    for sub in ("silver", "quarantine", "ops", "_checkpoints"):
        shutil.rmtree(root / sub, ignore_errors=True)
    start = time.perf_counter()
    [report] = run_pipelines(spark, cfg, ["silver_clickstream"], trigger=TriggerConf(available_now=True),
                             on_progress=on_progress)
    return time.perf_counter() - start, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kappalake-quality-bench-"))
    os.environ.setdefault("KAPPALAKE_PSEUDONYM_SECRET", "bench-only")
    overrides = {"lake.root": str(root), "lake.checkpoint_root": str(root / "_checkpoints"),
                 "spark.conf.spark.ui.enabled": "false",
                 "pipelines.silver_clickstream.source.max_files_per_trigger": 4}
    with_suite = load_config("local", overrides=overrides)
    without = load_config("local", overrides={**overrides, "quality.suites_dir": None})
    without = without.model_copy(update={"quality": without.quality.model_copy(update={"suites": {}})})
    spark = get_spark(with_suite, app_name="kappalake-bench-quality")
    try:
        write_reference_tables(spark, with_suite)
        t = time.perf_counter()
        write_bronze(spark, with_suite, args.events)
        print(f"bronze: {args.events:,} events written in {time.perf_counter() - t:.1f}s")
        runs = {"with_expectations": [], "without_expectations": []}
        run_silver(spark, without, root)  # warm-up: JIT, caches, reference tables
        for i in range(args.rounds):
            for label, cfg in (("with_expectations", with_suite), ("without_expectations", without))[:: 1 if i % 2 == 0 else -1]:
                seconds, report = run_silver(spark, cfg, root)
                rate = report.input_rows / seconds
                runs[label].append(rate)
                print(f"round {i + 1} {label:22} {rate:>10,.0f} rows/s")
        best = {k: max(v) for k, v in runs.items()}
        ratio = best["with_expectations"] / best["without_expectations"]
        print(f"best of {args.rounds}: with {best['with_expectations']:,.0f} rows/s, without "
              f"{best['without_expectations']:,.0f} rows/s: expectations cost {(1 - ratio) * 100:.1f}% of throughput")
        result = {"bench": "quality_cost", "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
                  "spark_master": with_suite.spark.master, "events": args.events, "runs_rows_per_s": runs,
                  "best_rows_per_s": best, "ratio_with_to_without": round(ratio, 3),
                  "rules_per_row": len(with_suite.quality.suites["silver.clickstream"]["expectations"])}
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {OUT}")
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
