"""``kappalake bench``: every measurement in one run, a printed table and a JSON result.

Stages (``--only`` picks some): preload, limit, passthrough, full, floor, quality, latency, hop,
alerts, offers, soak. ``--quick`` runs all of them small; the test suite runs them smaller still on its own session
(and the command once), so the harness never rots.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from kappalake.bench import stages
from kappalake.bench.floor import floor, kafka_to_delta
from kappalake.bench.offers import offer_latency
from kappalake.bench.probes import machine_info
from kappalake.config import Config

STAGES = ["preload", "limit", "passthrough", "full", "floor", "quality", "latency", "hop", "alerts", "offers", "soak"]
NEEDS_PRELOAD = {"limit", "passthrough", "full", "floor", "quality"}
NEEDS_FULL = {"floor", "quality"}  # they read the full stage's bronze table


@dataclass
class Plan:
    events: int = 2_000_000
    pool: int = 50_000
    latency_rate: int = 10_000
    latency_s: float = 120.0
    hop_s: float = 60.0  # a bare Kafka -> Delta stream alone at latency_rate: the one-hop floor
    alert_rate: int = 1_000
    alert_s: float = 120.0
    offer_rate: int = 100  # sign-ups/s: a busy provider's evening, not a firehose
    offer_s: float = 60.0
    soak_rate: int = 1_000  # what bronze, silver and five gold queries sustain together on 2 cores
    soak_s: float = 600.0
    warmup_s: float = 30.0
    trigger: str | None = "1 second"

    @classmethod
    def quick(cls) -> "Plan":
        return cls(events=5_000, pool=2_000, latency_rate=500, latency_s=15, hop_s=15, alert_rate=200, alert_s=20, offer_rate=20, offer_s=10,
                   soak_rate=500, soak_s=25, warmup_s=5)


TARGETS = {
    "full_events_per_s": (">=", 100_000),
    "full_vs_limit": (">=", 0.25),
    "silver_vs_limit": (">=", 0.5),
    "silver_p95_ms": ("<=", 2_000),
    "silver_p99_ms": ("<=", 3_000),
    "continuous_alert_p99_ms": ("<=", 100),
    "soak_driver_rss_growth": ("<=", 0.10),
    "soak_broker_rss_growth": ("<=", 0.10),
}


def run(cfg: Config, plan: Plan, only: list[str] | None, workspace: Path, out: Path, quick: bool,
        spark: SparkSession | None = None) -> dict:
    """Run the selected stages on the local (or configured) broker; write and return the result.

    With ``spark`` given the stages run on that session and leave it running (a notebook's, or
    the test suite's); otherwise on the profile's session, stopped at the end when this run
    started the broker too."""
    from kappalake.ingest.broker import LocalBroker
    from kappalake.session import get_spark

    selected = [s for s in STAGES if not only or s in only]
    if NEEDS_FULL & set(selected) and "full" not in selected:
        selected.insert(min(selected.index(s) for s in NEEDS_FULL if s in selected), "full")
    if NEEDS_PRELOAD & set(selected) and "preload" not in selected:
        selected.insert(0, "preload")
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    broker = LocalBroker(cfg.broker)
    started_here = cfg.broker.mode == "embedded" and broker.pid() is None
    if cfg.broker.mode == "embedded":
        broker.start()
    result: dict = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "quick": quick,
                    "plan": plan.__dict__, "stages": {}, "errors": {}}
    ctx, own_session = None, spark is None
    try:
        spark = spark or get_spark(cfg, app_name="kappalake-bench")
        result["machine"] = machine_info(spark) | {"kafka_broker": cfg.broker.kafka_version if cfg.broker.mode == "embedded"
                                                   else "external"}
        ctx = stages.Context(spark, cfg, workspace, plan.events, plan.pool, broker_pid=broker.pid())
        for name in selected:
            print(f"[bench] {name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                result["stages"][name] = _stage(ctx, plan, name)
            except Exception as e:  # noqa: BLE001 - one stage failing must not lose the others' figures
                result["errors"][name] = f"{type(e).__name__}: {e}"[:4000]
                traceback.print_exc()
                if name == "preload":
                    break
            print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
            _write(result, out)
    finally:
        if ctx is not None:
            try:
                stages.delete_topics(ctx)
            except Exception as e:  # noqa: BLE001 - the figures matter more than the cleanup
                print(f"[bench] could not delete the run's topics {ctx.topics}: {e}")
        if started_here:
            if own_session and (active := SparkSession.getActiveSession()) is not None:
                active.stop()
            broker.stop()
    result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result["summary"] = summarize(result)
    _write(result, out)
    return result


def _stage(ctx: stages.Context, plan: Plan, name: str) -> dict:
    if name == "preload":
        return stages.preload_topic(ctx)
    if name == "limit":
        return stages.limit(ctx)
    if name == "passthrough":
        return stages.passthrough(ctx)
    if name == "full":
        return stages.full(ctx)
    if name == "floor":
        return floor(ctx)
    if name == "quality":
        return stages.quality_cost(ctx)
    if name == "latency":
        return stages.sustained(ctx, "latency", plan.latency_rate, plan.latency_s, ["bronze_clickstream", "silver_clickstream"],
                                plan.trigger, plan.warmup_s)
    if name == "hop":
        return stages.sustained(ctx, "hop", plan.latency_rate, plan.hop_s, ["bronze_clickstream"], plan.trigger, plan.warmup_s,
                                visible_in="bronze.clickstream", start=kafka_to_delta)
    if name == "alerts":
        return stages.alert_paths(ctx, plan.alert_rate, plan.alert_s, plan.warmup_s, plan.trigger)
    if name == "offers":
        return offer_latency(ctx, plan.offer_rate, plan.offer_s, plan.warmup_s, plan.trigger)
    if name == "soak":
        return stages.sustained(ctx, "soak", plan.soak_rate, plan.soak_s,
                                ["bronze_clickstream", "silver_clickstream", *stages.GOLD_CLICKSTREAM], plan.trigger,
                                plan.warmup_s, sample_s=5.0 if plan.soak_s >= 120 else 2.0,
                                live_pool=False)  # the gold queries' sessions as long as in earlier soaks
    raise ValueError(f"unknown stage {name}")


def summarize(result: dict) -> dict:
    """The headline figures and each target: measured, met or not."""
    s = result["stages"]
    g = lambda *path: _get(s, *path)  # noqa: E731
    figures = {
        "limit_rows_per_s": g("limit", "rows_per_s"),
        "passthrough_rows_per_s": g("passthrough", "rows_per_s"),
        "full_events_per_s": g("full", "events_per_s"),
        "full_vs_limit": _ratio(g("full", "events_per_s"), g("limit", "rows_per_s")),
        "full_vs_passthrough": _ratio(g("full", "events_per_s"), g("passthrough", "rows_per_s")),
        "silver_rows_per_s": g("full", "silver_rows_per_s"),
        "silver_vs_limit": _ratio(g("full", "silver_rows_per_s"), g("limit", "rows_per_s")),
        "floor_from_json_vs_limit": _ratio(g("floor", "from_json", "rows_per_s"), g("limit", "rows_per_s")),
        "floor_dedup_vs_limit": _ratio(g("floor", "dedup", "rows_per_s"), g("limit", "rows_per_s")),
        "floor_contract_vs_limit": _ratio(g("floor", "contract", "rows_per_s"), g("limit", "rows_per_s")),
        "silver_vs_floor_dedup": _ratio(g("full", "silver_rows_per_s"), g("floor", "dedup", "rows_per_s")),
        "silver_p50_ms": g("latency", "latency_ms", "from_kafka", "p50"),
        "silver_p95_ms": g("latency", "latency_ms", "from_kafka", "p95"),
        "silver_p99_ms": g("latency", "latency_ms", "from_kafka", "p99"),
        "bronze_beside_silver_p95_ms": g("latency", "bronze_latency_ms", "from_kafka", "p95"),
        "hop_alone_p50_ms": g("hop", "latency_ms", "from_kafka", "p50"),
        "hop_alone_p95_ms": g("hop", "latency_ms", "from_kafka", "p95"),
        "hop_alone_p99_ms": g("hop", "latency_ms", "from_kafka", "p99"),
        "continuous_alert_p50_ms": g("alerts", "continuous_ms", "p50"),
        "continuous_alert_p99_ms": g("alerts", "continuous_ms", "p99"),
        "micro_batch_alert_p50_ms": g("alerts", "micro_batch_ms", "p50"),
        "micro_batch_alert_p99_ms": g("alerts", "micro_batch_ms", "p99"),
        "offer_p50_ms": g("offers", "latency_ms", "p50"),
        "offer_p95_ms": g("offers", "latency_ms", "p95"),
        "quality_ratio": g("quality", "ratio"),
        "soak_driver_rss_growth": g("soak", "memory", "driver_jvm_rss_mib", "growth"),
        "soak_broker_rss_growth": g("soak", "memory", "broker_rss_mib", "growth"),
        "soak_state_rows_growth": g("soak", "memory", "state_rows", "growth"),
    }
    targets = {}
    for key, (op, bound) in TARGETS.items():
        v = figures.get(key)
        targets[key] = {"target": f"{op} {bound}", "measured": v,
                        "met": None if v is None else (v >= bound if op == ">=" else v <= bound)}
    return {"figures": figures, "targets": targets}


def _get(d: dict, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _ratio(a, b):
    return round(a / b, 3) if a and b else None


def _write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(out)


def render(result: dict) -> str:
    """The summary as a table for the terminal."""
    m = result.get("machine", {})
    lines = [f"kappalake bench{' --quick' if result.get('quick') else ''}: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
             f"{m.get('memory_gib', '?')} GiB, Spark {m.get('spark', '?')} ({m.get('spark_master', '?')}), "
             f"Kafka {m.get('kafka_broker', '?')}", ""]
    figures = result["summary"]["figures"]
    targets = result["summary"]["targets"]
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        t = targets.get(k)
        verdict = "" if t is None else f"   target {t['target']}: {'met' if t['met'] else 'NOT met' if t['met'] is False else '-'}"
        shown = "-" if v is None else f"{v:,.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.0f}"
        lines.append(f"{k:<{width}}  {shown:>12}{verdict}")
    for name, err in result.get("errors", {}).items():
        lines.append(f"stage {name} FAILED: {err.splitlines()[0][:300]}")
    return "\n".join(lines)
