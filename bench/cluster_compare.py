"""Throughput in local mode and on the local standalone cluster, side by side, from one run.

    .venv/bin/python bench/cluster_compare.py [--events 400000] [--local local[2]]

Starts the cluster (``kappalake cluster start``: a master and two workers, each its own JVM) if
it is not running, then runs ``kappalake bench --only limit --only full`` once per master, each
in a fresh process (a JVM's master cannot change): the machine's own limit (``from_json`` +
Parquet) and the full pipeline, bronze to the eight gold tables, each as a ratio to the limit
measured in the same process. Prints a table and writes bench/results/cluster_compare.json. The
cluster is stopped afterwards if this run started it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kappalake.config import load_config  # noqa: E402
from kappalake.ops.cluster import LocalCluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "cluster_compare.json"


def bench(master: str, events: int, out: Path) -> dict:
    """One ``kappalake bench`` run on ``master``; its JSON result."""
    cmd = [sys.executable, "-m", "kappalake", "bench", "--only", "limit", "--only", "full", "--events", str(events),
           "--master", master, "--out", str(out), "--workspace", str(ROOT / ".kappalake" / "bench-compare")]
    print(f"[compare] {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return json.loads(out.read_text())


def figures(result: dict) -> dict:
    """The run's limit, full pipeline and silver throughput, and their ratios to the limit."""
    limit = result["stages"].get("limit", {}).get("rows_per_s")
    full = result["stages"].get("full", {})
    silver_s = full.get("stage_seconds", {}).get("silver")
    silver = round(full["events"] / silver_s, 1) if silver_s else None
    ratio = lambda x: round(x / limit, 3) if x and limit else None  # noqa: E731
    return {"limit_rows_per_s": limit, "full_events_per_s": full.get("events_per_s"),
            "full_vs_limit": ratio(full.get("events_per_s")), "silver_events_per_s": silver,
            "silver_vs_limit": ratio(silver), "errors": result.get("errors")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=400_000, help="clickstream events preloaded (default 400,000)")
    ap.add_argument("--local", default="local[2]", help="the local master to compare with (default local[2])")
    args = ap.parse_args()
    cluster = LocalCluster(load_config("local").cluster)
    started_here = not cluster.status().running
    status = cluster.start()
    runs = {}
    try:
        for label, master in (("local", args.local), ("cluster", status.master_url)):
            runs[label] = {"master": master, **figures(bench(master, args.events, OUT.with_name(f"cluster_compare_{label}.json")))}
    finally:
        if started_here:
            cluster.stop()
    c = load_config("local").cluster
    result = {"bench": "cluster_compare", "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "events": args.events, "cluster": {"workers": c.workers, "worker_cores": c.worker_cores,
                                                  "worker_memory": c.worker_memory}, "runs": runs}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'':9}{'master':26}{'limit rows/s':>13}{'silver ev/s':>12}{'/limit':>8}{'full ev/s':>10}{'/limit':>8}")
    for label, r in runs.items():
        print(f"{label:9}{r['master']:26}{r['limit_rows_per_s'] or 0:>13,.0f}{r['silver_events_per_s'] or 0:>12,.0f}"
              f"{r['silver_vs_limit'] or 0:>8.3f}{r['full_events_per_s'] or 0:>10,.0f}{r['full_vs_limit'] or 0:>8.3f}")
    print(f"result: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
