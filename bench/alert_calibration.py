"""Alert detectors against the simulators' ground truth: injected episodes found, false alerts.

    .venv/bin/python bench/alert_calibration.py [--seeds 1 2 3] [--hours 1]

Runs the very per-key logic the Spark detectors run (``reading_step`` / ``rate_step`` from
``kappalake.transforms.anomalies``, with the parameters of ``conf/base.yaml``) over simulated
hours, without Spark, and compares the alerts with what the simulators injected. Prints a
table and writes bench/results/alert_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from kappalake.config import load_config
from kappalake.ingest.reference import Reference
from kappalake.ingest.simulators.base import parse_ms
from kappalake.ingest.simulators.clickstream import ClickstreamSimulator
from kappalake.ingest.simulators.telemetry import TelemetrySimulator
from kappalake.transforms.anomalies import rate_step, reading_step, temperature_rules

OUT = Path(__file__).resolve().parent / "results" / "alert_calibration.json"
START = parse_ms("2026-11-22T08:00:00Z")
SENSOR = {"engine": "engine_temp_c", "cargo": "cargo_temp_c"}


def transform_params(pipeline: str, name: str) -> dict:
    cfg = load_config("local")
    for t in cfg.pipelines[pipeline].transforms:
        if isinstance(t, dict) and t.get("name") == name:
            return {k: v for k, v in t.items() if k != "name"}
    return {}


def until(sim, end_ms: int):
    """(event time, event) of a simulation up to ``end_ms``."""
    for e in sim:
        t = parse_ms(e.event["event_time"])
        if t > end_ms:
            return
        yield t, e.event


def run_step(step, frames: dict[str, pd.DataFrame]) -> list[dict]:
    """Each key's whole history, then the final watermark: what the batch detector does."""
    out = []
    for key, pdf in frames.items():
        st: dict = {}
        step.add(st, pdf.sort_values("t", kind="stable"), -(2 ** 62))
        out += step.advance(st, key, int(pdf["t"].max()) + 1)
    return out


def telemetry(seed: int, hours: float, devices: int, seconds_between: float) -> dict:
    p = transform_params("alerts_telemetry", "temperature_anomalies")
    metrics = p.pop("metrics")
    p.pop("lateness", None)
    rules = temperature_rules(metrics, **p)
    sim = TelemetrySimulator(Reference(), seed, START, rate=devices / seconds_between, devices=devices, people=0)
    end = START + int(hours * 3600_000)
    rows = defaultdict(list)
    for t, ev in until(sim, end):
        row = {"t": t}
        for m, spec in metrics.items():
            applies = not spec.get("vehicle_types") or ev["vehicle_type"] in spec["vehicle_types"]
            row |= {m: ev.get(m), f"{m}__low": spec.get("low") if applies else None,
                    f"{m}__high": spec.get("high") if applies else None}
        rows[ev["device_id"]].append(row)
    alerts = [a for a in run_step(reading_step(rules), {k: pd.DataFrame(v) for k, v in rows.items()})
              if a["event"] == "open"]
    truth = [ep for ep in sim.episodes if ep.end_ms <= end]  # finished within the span
    min_ms = rules["engine_temp_c"].min_duration_ms
    found = [ep for ep in truth if any(a["entity"] == ep.device_id and a["metric"] == SENSOR[ep.sensor]
                                       and ep.start_ms - 5_000 <= a["started_ms"] <= ep.end_ms for a in alerts)]
    false = [a for a in alerts if not any(a["entity"] == ep.device_id and a["metric"] == SENSOR[ep.sensor]
                                          and ep.start_ms - 5_000 <= a["started_ms"] <= ep.end_ms for ep in sim.episodes)]
    longer = [ep for ep in truth if ep.end_ms - ep.start_ms >= min_ms]
    return {"detector": "temperature", "seed": seed, "hours": hours, "vehicles": devices,
            "seconds_between_readings": seconds_between, "readings": sum(map(len, rows.values())),
            "injected": len(truth), "injected_10s_or_more": len(longer), "found": len(found),
            "false_alerts": len(false), "false_examples": [(a["entity"], a["metric"], a["reason"]) for a in false[:5]]}


def clickstream(seed: int, hours: float, rate: float) -> dict:
    p = transform_params("alerts_clickstream", "rate_anomalies")
    by = p.pop("by", ["app", "area"])
    p.pop("lateness", None)
    step = rate_step(**p)
    sim = ClickstreamSimulator(Reference(), seed, START, rate=rate)
    end = START + int(hours * 3600_000)
    rows = defaultdict(list)
    for t, ev in until(sim, end):
        area = "/" + ev["page"].split("/")[1] if ev.get("page") else ""
        kind = ev["event_type"]
        key = ":".join(str(ev.get(c) if c != "area" else area) for c in by)
        rows[key].append({"t": t, "errors": int(kind == "error"), "buffering": int(kind == "buffering"),
                          "playback": int(kind in ("video_play", "buffering"))})
    alerts = [a for a in run_step(step, {k: pd.DataFrame(v) for k, v in rows.items()}) if a["event"] == "open"]
    truth = [i for i in sim.incidents if i.end_ms <= end]
    metric = {"errors": "error_rate", "buffering": "buffering_rate"}

    def matches(a: dict, i) -> bool:  # the alert's window overlaps the incident, same area and kind
        return (a["metric"] == metric[i.kind] and a["entity"].endswith(":" + i.area)
                and i.start_ms <= a["event_ms"] <= i.end_ms + 300_000)

    found = [i for i in truth if any(matches(a, i) for a in alerts)]
    false = [a for a in alerts if not any(matches(a, i) for i in sim.incidents)]  # incl. one still going at the end
    return {"detector": "rates", "seed": seed, "hours": hours, "events_per_s": rate, "events": sum(map(len, rows.values())),
            "injected": len(truth), "found": len(found), "alerts": len(alerts), "false_alerts": len(false),
            "missed": [(i.kind, i.area, round((i.end_ms - i.start_ms) / 1000)) for i in truth if i not in found]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--hours", type=float, default=1.0)
    args = ap.parse_args()
    t0 = time.time()
    results = []
    for seed in args.seeds:
        results.append(telemetry(seed, args.hours, devices=20, seconds_between=1.0))
        results.append(telemetry(seed, args.hours, devices=20, seconds_between=10.0))
        results.append(clickstream(seed, args.hours, rate=50))
    print(f"{'detector':<12}{'seed':>5}{'input':>26}{'injected':>10}{'found':>7}{'false':>7}")
    for r in results:
        what = (f"{r['vehicles']} vehicles, 1 per {r['seconds_between_readings']:g} s" if r["detector"] == "temperature"
                else f"{r['events_per_s']:g} events/s")
        injected = r.get("injected_10s_or_more", r["injected"])
        print(f"{r['detector']:<12}{r['seed']:>5}{what:>26}{injected:>10}{r['found']:>7}{r['false_alerts']:>7}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "seconds": round(time.time() - t0, 1), "results": results}, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
