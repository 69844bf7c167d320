"""Where silver's time goes: each phase of its micro-batch, and the Spark stages under each.

    .venv/bin/python bench/profile_silver.py [--events 400000] [--batch-bytes 32m] [--ladder]

Writes simulated clickstream into a bronze Delta table (no broker needed), warms up on a small
run, then runs the real ``silver_clickstream`` pipeline (availableNow) with every phase of
``write_checked`` timed: judging the batch (which computes the whole transform chain: parse,
normalise, dedup state, pseudonymise, enrich), then the writes, which run side by side (the
kept rows' Delta write, the quarantine append and the metrics append, each also timed on its
own), and Spark's own split of each micro-batch (``durationMs``). Each phase's Spark jobs carry a description, so the stage
times (executor run, CPU, GC) are summed per phase from Spark's status REST API. Prints a
table and writes bench/results/profile_silver.json.

It also reports silver's streaming plan as the JVM runs it (``codegen``): each whole-stage-codegen
stage with the bytecode size of its largest generated method (HotSpot does not JIT-compile a
method over 8,000 bytes, ``-XX:-DontCompileHugeMethods`` aside, so such a stage runs in the
bytecode interpreter) and the operators that run outside any codegen stage.

``--ladder`` then streams the same bronze table again, availableNow into a Delta table, through
growing prefixes of silver's transform chain: bare ``from_json`` with the contract's schema,
``parse_events``, + normalise, ..., + dedup (without the batch writer: no settle, gate,
quarantine or metrics), and finally silver itself once more; the rows/s of each rung show what
each step adds to the cost, all in one JVM and one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_cost import run_silver, write_bronze  # noqa: E402

from kappalake.bench.floor import bare_events  # noqa: E402
from kappalake.config import load_config  # noqa: E402
from kappalake.pipelines.compose import apply_transforms, read_source  # noqa: E402
from kappalake.pipelines.plan import transform_specs  # noqa: E402
from kappalake.pipelines import batches  # noqa: E402
from kappalake.pipelines.reference import write_reference_tables  # noqa: E402
from kappalake.quality.gate import QualityGate  # noqa: E402
from kappalake.session import get_spark  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "profile_silver.json"
PHASES = ("judge", "writes")  # one after the other; "writes" is the wall time of the side-by-side writes
WRITES = ("write_silver", "write_quarantine", "write_metrics")  # each write's own time (they overlap)


class Phases:
    """Wall time per phase, with each phase's Spark jobs described by its name."""

    def __init__(self, spark) -> None:
        self.sc = spark.sparkContext
        self.seconds: dict[str, float] = defaultdict(float)
        self.on = False

    @contextlib.contextmanager
    def phase(self, name: str):
        if not self.on:
            yield
            return
        self.sc.setJobDescription(f"phase:{name}")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0
            self.sc.setJobDescription(None)

    def wrap(self, module, attr: str, name: str) -> None:
        inner = getattr(module, attr)

        def timed(*a, **kw):
            with self.phase(name):
                return inner(*a, **kw)
        setattr(module, attr, timed)


def instrument(ph: Phases) -> None:
    ph.wrap(QualityGate, "measure", "judge")  # the first action on the persisted, evaluated batch
    ph.wrap(batches, "run_together", "writes")
    ph.wrap(batches, "write_kept", "write_silver")
    ph.wrap(batches, "write_quarantine", "write_quarantine")
    ph.wrap(batches, "write_metrics", "write_metrics")


def into_delta(df, target: Path, **trigger):
    """Stream ``df`` into a Delta table at ``target`` (its checkpoint inside) until the trigger ends it."""
    query = (df.writeStream.format("delta").option("checkpointLocation", str(target / "_checkpoint"))
             .trigger(**trigger).start(str(target)))
    query.awaitTermination()  # raises the query's error
    return query


def ladder(spark, cfg, root: Path, events: int) -> list[dict]:
    """Rows/s of silver's source streamed into Delta through each prefix of its transforms."""
    spec = cfg.pipeline("silver_clickstream")
    steps = list(transform_specs(spec))
    rungs = [("bare from_json", None)] + [(" + ".join(t.name for t in steps[:k]), k) for k in range(1, len(steps) + 1)]
    out = []
    for i, (label, k) in enumerate(rungs):
        src = read_source(spark, spec)
        df = bare_events(src, "clickstream") if k is None else apply_transforms(spark, spec, src, steps[:k])
        start = time.perf_counter()
        into_delta(df, root / f"ladder_{i}", availableNow=True)
        seconds = time.perf_counter() - start
        out.append({"rung": label, "seconds": round(seconds, 2), "rows_per_s": round(events / seconds, 1)})
        print(f"  {label:90} {seconds:6.1f} s {events / seconds:>10,.0f} rows/s", flush=True)
    seconds, report = run_silver(spark, cfg, root)
    out.append({"rung": "silver (the pipeline: + settle, gate, quarantine, metrics)", "seconds": round(seconds, 2),
                "rows_per_s": round(report.input_rows / seconds, 1)})
    print(f"  {out[-1]['rung']:90} {seconds:6.1f} s {report.input_rows / seconds:>10,.0f} rows/s")
    return out


_IN_STAGE = re.compile(r"\*\((\d+)\) (\w+)")  # "*(2) Project [...]": an operator inside codegen stage 2
HOTSPOT_HUGE_METHOD = 8000  # bytes of bytecode: HotSpot's HugeMethodLimit (its JIT skips larger methods)


def codegen(spark, cfg, root: Path) -> dict:
    """Silver's streaming query (its transform chain; the batch writer is not in it) run for one
    micro-batch: its codegen stages by largest method, and the operators outside any stage."""
    spec = cfg.pipeline("silver_clickstream")
    query = into_delta(apply_transforms(spark, spec, read_source(spark, spec)), root / "codegen_probe", once=True)
    plan = query._jsq.streamingQuery().lastExecution().executedPlan()
    stages = []
    seq = spark.sparkContext._jvm.org.apache.spark.sql.execution.debug.package.codegenStringSeq(plan).iterator()
    while seq.hasNext():
        subtree = seq.next()
        # "*(2) Project [...]\n+- *(2) Project ...": the stage's operators, top first
        lines = [m for line in subtree._1().strip().splitlines() if (m := _IN_STAGE.match(line.lstrip(" :+-")))]
        own = [m.group(2) for m in lines if m.group(1) == lines[0].group(1)]  # the subtree goes on below the stage
        size = subtree._3().maxMethodCodeSize()
        stages.append({"stage": f"*({lines[0].group(1)})", "operators": " <- ".join(own),
                       "max_method_bytes": size, "interpreted": size > HOTSPOT_HUGE_METHOD})
    outside = Counter(re.match(r"\w*", line.lstrip(" :+-")).group(0) for line in plan.treeString().splitlines()
                      if line.strip() and not _IN_STAGE.match(line.lstrip(" :+-")))
    return {"stages": stages, "outside_codegen": dict(outside.most_common())}


def stage_times(spark) -> dict[str, dict[str, float]]:
    """Executor run/CPU/GC seconds and task counts of the completed stages, per job description."""
    base = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}"
    get = lambda p: json.load(urllib.request.urlopen(base + p))  # noqa: E731
    stage_desc = {}
    for job in get("/jobs"):
        for sid in job.get("stageIds", []):
            stage_desc[sid] = job.get("description") or job.get("name", "?")
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for st in get("/stages?status=complete"):
        desc = stage_desc.get(st["stageId"], "?")
        phase = desc.split("phase:", 1)[1].split()[0] if "phase:" in desc else "other"
        key = f"{phase} | {st['name'][:60]}"
        row = out[key]
        row["stages"] += 1
        row["tasks"] += st["numTasks"]
        row["run_s"] += st["executorRunTime"] / 1000
        row["cpu_s"] += st["executorCpuTime"] / 1e9
        row["gc_s"] += st["jvmGcTime"] / 1000
        row["shuffle_write_mb"] += st.get("shuffleWriteBytes", 0) / 2**20
        row["input_mb"] += st.get("inputBytes", 0) / 2**20
    return {k: {m: round(v, 2) for m, v in row.items()} for k, row in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--batch-bytes", default=None, help="silver's source.max_bytes_per_trigger (default: the config's)")
    ap.add_argument("--ladder", action="store_true", help="then each prefix of the transform chain, streamed alone")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="further config overrides")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kappalake-profile-"))
    os.environ.setdefault("KAPPALAKE_PSEUDONYM_SECRET", "bench-only")
    overrides = {"lake.root": str(root), "lake.checkpoint_root": str(root / "_checkpoints"), "monitoring.json_log": None}
    if args.batch_bytes:
        overrides["pipelines.silver_clickstream.source.max_bytes_per_trigger"] = args.batch_bytes
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = v
    cfg = load_config("local", overrides=overrides)
    spark = get_spark(cfg, app_name="kappalake-profile-silver")
    try:
        write_reference_tables(spark, cfg)
        t = time.perf_counter()
        write_bronze(spark, cfg, 20_000)
        run_silver(spark, cfg, root)  # warm-up: JIT, caches, reference tables
        shutil.rmtree(root / "bronze", ignore_errors=True)
        write_bronze(spark, cfg, args.events)
        print(f"bronze: {args.events:,} events written ({time.perf_counter() - t:.0f} s with the warm-up)")
        ph = Phases(spark)
        instrument(ph)
        done_before = stage_times(spark)  # the warm-up's and bronze's stages are subtracted below
        ph.on = True
        durations: dict[str, float] = defaultdict(float)

        def add_durations(_: str, progress: dict) -> None:
            if progress.get("numInputRows"):
                for k, ms in progress.get("durationMs", {}).items():
                    durations[k] += ms / 1000

        seconds, report = run_silver(spark, cfg, root, on_progress=add_durations)
        rows, batches = report.input_rows, report.batches
        ph.on = False
        stages = {}
        for k, v in stage_times(spark).items():
            d = {m: round(x - done_before.get(k, {}).get(m, 0), 2) for m, x in v.items()}
            if d["stages"] > 0:
                stages[k] = d
        stages = dict(sorted(stages.items(), key=lambda kv: -kv[1]["run_s"]))
        phases = {p: round(ph.seconds.get(p, 0.0), 2) for p in PHASES}
        phases["rest"] = round(seconds - sum(phases.values()), 2)
        writes = {w: round(ph.seconds.get(w, 0.0), 2) for w in WRITES}
        print(f"silver: {rows:,} rows in {batches} batches, {seconds:.1f} s = {rows / seconds:,.0f} rows/s")
        print(f"{'phase':18}{'seconds':>9}{'share':>8}")
        for p, s in phases.items():
            print(f"{p:18}{s:9.1f}{s / seconds:8.1%}")
        print("  of which each write, side by side: " + ", ".join(f"{w} {s:.1f} s" for w, s in writes.items()))
        # Spark's own split of the micro-batches (addBatch is the foreachBatch: the phases above).
        spark_split = {k: round(v, 2) for k, v in sorted(durations.items(), key=lambda kv: -kv[1])}
        print("streaming progress, seconds summed over the batches: "
              + ", ".join(f"{k} {v:.1f}" for k, v in spark_split.items()))
        print(f"\n{'phase | stage':72}{'n':>4}{'tasks':>7}{'run s':>8}{'cpu s':>8}{'gc s':>7}{'shuf MB':>9}")
        for k, v in list(stages.items())[:25]:
            print(f"{k:72}{v['stages']:4.0f}{v['tasks']:7.0f}{v['run_s']:8.1f}{v['cpu_s']:8.1f}{v['gc_s']:7.1f}"
                  f"{v['shuffle_write_mb']:9.1f}")
        result = {"bench": "profile_silver", "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "cpus": os.cpu_count(), "spark_master": cfg.spark.master, "events": args.events, "rows": rows,
                  "batches": batches, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1),
                  "overrides": {k: v for k, v in overrides.items() if not k.startswith("lake.")},
                  "phase_seconds": phases, "write_seconds": writes, "progress_seconds": spark_split, "stages_by_phase": stages}
        result["codegen"] = codegen(spark, cfg, root)
        print("\nsilver's streaming query, one micro-batch: codegen stages (largest generated method; over "
              f"{HOTSPOT_HUGE_METHOD:,} bytes HotSpot does not JIT-compile it)")
        for st in result["codegen"]["stages"]:
            print(f"  {st['stage']:6}{st['max_method_bytes']:>8,} B  {'interpreted' if st['interpreted'] else 'compiled':12}"
                  f"{st['operators'][:100]}")
        print("  outside any codegen stage: " + ", ".join(f"{k} x{n}" for k, n in result["codegen"]["outside_codegen"].items()))
        OUT.parent.mkdir(exist_ok=True)
        if args.ladder:
            OUT.write_text(json.dumps(result, indent=2) + "\n")  # the profile kept should a rung fail
            print("\nladder (availableNow into Delta, the same bronze):")
            result["ladder"] = ladder(spark, cfg, root, args.events)
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {OUT}")
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
