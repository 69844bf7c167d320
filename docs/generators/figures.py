"""Figures from bench/results: the benchmark's targets, the latest partial run, the latest chaos run, silver's profile."""

from __future__ import annotations

import json
from typing import Any

from generators.common import REPO, RESULTS, GenerationError, code, table


def _result(name: str) -> dict[str, Any]:
    path = RESULTS / name
    if not path.is_file():
        raise GenerationError(f"{path.relative_to(REPO)} is missing")
    return json.loads(path.read_text())


def bench_targets() -> str:
    d = _result("kappalake-bench.json")
    m = d["machine"]
    rows = [[code(k), t["target"], f"{t['measured']:,}", "met" if t["met"] else "**not met**"]
            for k, t in d["summary"]["targets"].items()]
    head = (f"From `bench/results/kappalake-bench.json` ({d['started'][:10]}, commit {m.get('kappalake_commit')}, "
            f"{m['cores']} cores {m['cpu']}, {m['memory_gib']} GiB, Spark {m.get('spark')} {m.get('spark_master')}):")
    return head + "\n\n" + table(["figure", "target", "measured", ""], rows)


def bench_partial() -> str:
    """Every figure of the latest partial run (``--only`` some stages), with its target where it has one."""
    d = _result("kappalake-bench-partial.json")
    m = d["machine"]
    targets = d["summary"]["targets"]
    rows = []
    for k, v in d["summary"]["figures"].items():
        if v is None:
            continue
        t = targets.get(k)
        shown = f"{v:,.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.0f}"
        rows.append([code(k), shown, "" if t is None else f"{t['target']}: {'met' if t['met'] else '**not met**'}"])
    head = (f"From `bench/results/kappalake-bench-partial.json` ({d['started'][:10]}, commit {m.get('kappalake_commit')}, "
            f"{m['cores']} cores {m['cpu']}, Spark {m.get('spark')} {m.get('spark_master')}; stages "
            f"{', '.join(d['stages'])}; {d['plan']['events']:,} events, {d['plan']['latency_rate']:,} events/s for the "
            f"latency ({d['plan']['latency_s']:g} s) and hop ({d['plan'].get('hop_s', 0):g} s) runs):")
    return head + "\n\n" + table(["figure", "measured", "target"], rows)


def chaos_run() -> str:
    d = _result("chaos.json")
    rows = []
    for s in d["scenarios"]:
        figures = {c["check"]: c.get("figures", {}) for c in s["checks"]}
        silver = figures.get("silver", {})
        bronze = figures.get("bronze", {})
        delta = [c for c in s["checks"] if c["check"] == "delta"]
        gold = [c for c in s["checks"] if c["check"] == "gold"]
        rows.append([s["scenario"], "ok" if s["ok"] else "FAILED", f"{sum(s['events'].values()):,}",
                     f"{bronze.get('rows', 0):,}", f"{silver.get('rows', 0):,}", f"{silver.get('quarantined', 0):,}",
                     f"{silver.get('resends_dropped', 0):,}",
                     f"{bronze.get('duplicates', 0) + silver.get('duplicate_events', 0)}",
                     f"{bronze.get('missing', 0) + silver.get('lost', 0)}",
                     f"{sum(c['ok'] for c in gold)}/{len(gold)}", f"{sum(c['ok'] for c in delta)}/{len(delta)}",
                     f"{s['seconds']:,.0f}"])
    return (f"From `bench/results/chaos.json` (written {d['at']}):\n\n"
            + table(["scenario", "result", "events", "bronze", "silver", "quarantined", "resends", "duplicated",
                     "lost", "gold ok", "delta ok", "s"], rows))


def silver_profile() -> str:
    d = _result("profile_silver.json")
    total = sum(d["phase_seconds"].values())
    rows = [[phase.replace("_", " "), f"{s:.1f}", f"{s / total:.0%}"] for phase, s in d["phase_seconds"].items()]
    return (f"From `bench/results/profile_silver.json` ({d['when'][:10]}, {d['cpus']} cores, {d['spark_master']}): "
            f"{d['events']:,} events in {d['batches']} batches, {d['seconds']:.1f} s, "
            f"**{d['rows_per_s']:,.0f} rows/s**.\n\n" + table(["phase", "wall s", "share"], rows) + _codegen(d) + _ladder(d))


def _codegen(d: dict[str, Any]) -> str:
    """Silver's streaming plan as the JVM ran it: codegen stages by largest generated method."""
    cg = d.get("codegen")
    if not cg:
        return ""
    rows = [[s["stage"], f"{s['max_method_bytes']:,}", "interpreted" if s["interpreted"] else "JIT-compiled",
             s["operators"].replace(" <- ", ", ")]
            for s in cg["stages"]]
    outside = ", ".join(f"{k} x{n}" for k, n in cg["outside_codegen"].items())
    return ("\n\nSilver's streaming query (the transform chain, one micro-batch) as the JVM ran it: each whole-stage "
            "codegen stage with its largest generated method (HotSpot does not JIT-compile a method over 8,000 bytes "
            "of bytecode):\n\n" + table(["stage", "largest method, bytes", "runs", "operators (top first)"], rows)
            + f"\n\nOutside any codegen stage: {outside}.")


def _ladder(d: dict[str, Any]) -> str:
    """The ``--ladder`` rungs of the same run, each with what it added to the one before."""
    rungs = d.get("ladder")
    if not rungs:
        return ""
    rows, before = [], None
    for r in rungs:
        added = "" if before is None else f"{r['seconds'] - before:+.1f}"
        rows.append([r["rung"], f"{r['seconds']:.1f}", added, f"{r['rows_per_s']:,.0f}"])
        before = r["seconds"]
    return ("\n\nThen `--ladder` in the same JVM: the same bronze streamed availableNow into a Delta table through "
            "each prefix of silver's transform chain, and silver once more (warm):\n\n"
            + table(["streamed", "s", "added", "rows/s"], rows))
