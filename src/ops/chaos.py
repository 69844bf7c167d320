"""`kappalake chaos`: break the running job on purpose, then prove nothing was lost or duplicated.

Each scenario gets its own topics and lake, a producer feeding both topics (with faults) and
the streaming job as a separate ``kappalake ingest`` process, then does one kind of harm:

- ``kills``: SIGKILL the job N times, each at a chosen point (the offsets log of a batch being
  written, a Delta commit of a table, the stream's commit log being written, or at random),
  restarting it each time;
- ``broker``: stop the Kafka broker under the running job and start it again;
- ``disk_full``: the lake on a small filesystem that fills up (needs root to mount a tmpfs);
- ``permissions``: a table's log made unwritable while the job commits to it;
- ``maintenance``: reprocess silver and gold, OPTIMIZE and VACUUM, all while streaming.

Then the pipelines catch up (availableNow, on the harness's own session) and :mod:`kappalake.ops.consistency` checks the
lake: one bronze row per Kafka record, silver + quarantine account for every bronze row, gold equals
a batch recomputation, every Delta version readable with no dangling files.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kappalake.config import Config
from kappalake.errors import ConfigError
from kappalake.ingest import simulators
from kappalake.ops.chaos_job import ConfigSource, Feed, Job, batches, watch
from kappalake.ops.consistency import Check, verify_lake
from kappalake.pipelines.plan import readers_of

SCENARIOS = ("kills", "broker", "disk_full", "permissions", "maintenance")
KILL_POINTS = ("offsets", "delta_commit", "commits", "random")


@dataclass
class Kill:
    """One SIGKILL: where it was aimed, what had just appeared there, and the batch it cut."""

    n: int
    point: str
    target: str
    seen: str | None
    batch_in_flight: bool | None
    uptime_s: float


@dataclass
class ScenarioResult:
    scenario: str
    ok: bool | None  # None: skipped
    seconds: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def chain(cfg: Config, topic: str, required: bool = True) -> list[str] | None:
    """The job a scenario runs for ``topic``, from the configuration: the pipeline landing the
    topic in a table (bronze), the first reading that table (silver, with its quarantine) and
    the first gold pipeline reading silver's table (none: an error, or None if not ``required``)."""
    bronze = next((n for n, p in cfg.pipelines.items() if p.source.topic == topic and p.sink.table), None)
    silver = bronze and next(iter(readers_of(cfg.pipelines, cfg.pipelines[bronze].sink.table)), None)
    gold = silver and next((n for n in readers_of(cfg.pipelines, cfg.pipelines[silver].sink.table)
                            if cfg.pipelines[n].sink.table.startswith("gold.")), None)
    if not gold and not required:
        return None
    if not gold:
        raise ConfigError(f"chaos --topic {topic}: no pipeline chain lands it in a table, reads that (silver) and a "
                          f"gold table from it; found {[n for n in (bronze, silver) if n]}")
    return [bronze, silver, gold]


class Chaos:
    """Runs scenarios under ``workdir`` against the configured broker; see the module docstring."""

    def __init__(self, source: ConfigSource, workdir: Path, kills: int = 10, rate: float = 150.0,
                 faults: float = 0.005, outage_s: float = 30.0, seed: int = 7,
                 topics: list[str] | None = None, say: Callable[[str], None] = print, spark: Any = None):
        self.source, self.workdir, self.kills, self.rate = source, workdir, kills, rate
        base = source.load({})
        self.all_topics = list(base.topics)  # each scenario renames them all
        simulated = simulators.topics()
        self.topics = topics or [t for t in base.topics if t in simulated and chain(base, t, required=False)]
        self.chains = [chain(base, t) for t in self.topics]  # [bronze, silver, gold] per topic
        self.pipelines = [n for c in self.chains for n in c]
        self.targets = list(self.pipelines)  # killed in turn: the pipeline whose checkpoint or table is watched
        self.faults, self.outage_s, self.seed, self.say = faults, outage_s, seed, say
        self.rng = random.Random(seed)
        # A session given here (a notebook's, the test suite's) is used and left running.
        self._spark, self._own_spark = spark, spark is None
        self._jobs: list[Job] = []

    # -- shared steps --------------------------------------------------------------------
    def _config(self, scenario: str, lake: Path | None = None) -> tuple[Config, dict[str, Any]]:
        suffix = f"{scenario}_{uuid.uuid4().hex[:6]}"
        lake = lake or self.workdir / scenario / "lake"
        extra = {f"topics.{t}.name": f"chaos_{t}_{suffix}" for t in self.all_topics}
        extra.update({"lake.root": str(lake), "lake.checkpoint_root": str(lake / "_checkpoints"),
                      "monitoring.json_log": str(self.workdir / scenario / "stream-metrics.jsonl")})
        return self.source.load(extra), extra

    def spark(self, cfg: Config):  # noqa: ANN201
        if self._spark is None:
            from kappalake.session import get_spark

            self._spark = get_spark(cfg)
        return self._spark

    def _prepare(self, scenario: str, lake: Path | None = None) -> tuple[Config, Job]:
        from kappalake.ingest.topics import ensure_topics
        from kappalake.pipelines.reference import write_reference_tables

        (self.workdir / scenario).mkdir(parents=True, exist_ok=True)
        cfg, extra = self._config(scenario, lake)
        ensure_topics(cfg.kafka_settings, cfg.topic_specs())
        write_reference_tables(self.spark(cfg), cfg)
        job = Job(self.source, extra, self.workdir / scenario / "job.log", self.pipelines)
        self._jobs.append(job)
        return cfg, job

    def _feed(self, cfg: Config, seed: int, rate: float | None = None) -> Feed:
        return Feed(cfg, self.topics, rate or self.rate, self.faults, self.seed + seed).start()

    def _wait_commits(self, cfg: Config, job: Job, pipeline: str, n: int, timeout: float = 300.0) -> bool:
        """Wait until ``pipeline`` has committed ``n`` more batches in this job run."""
        commits = Path(cfg.lake.checkpoint_path(pipeline)) / "commits"
        target = batches(commits) + n
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and job.running:
            if batches(commits) >= target:
                return True
            time.sleep(0.2)
        return False

    def _finish(self, result: ScenarioResult, cfg: Config, job: Job, feed: Feed | None) -> ScenarioResult:
        """Stop the feed, let the job catch up with everything Kafka holds, check the lake."""
        if feed is not None:
            result.events = feed.stop()
            if feed.errors:
                result.notes.append(f"{feed.errors} sends not acknowledged by Kafka (not counted as sent)")
        from kappalake.config import TriggerConf
        from kappalake.errors import PipelineError
        from kappalake.pipelines.runner import run_pipelines

        job.stop()
        # The restart that catches up runs on this process's session (each kill's restart is a
        # process already): one JVM warm-up fewer, the same checkpoints and tables.
        try:
            run_pipelines(self.spark(cfg), cfg, self.pipelines, trigger=TriggerConf(available_now=True), timeout=1800)
        except PipelineError as e:
            result.ok = False
            result.notes.append(f"catch-up run failed: {e}")
            return result
        self.say(f"  [{result.scenario}] caught up; checking the lake")
        result.checks = verify_lake(self.spark(cfg), cfg, self.pipelines)
        result.ok = all(c.ok for c in result.checks) and result.ok is not False
        return result

    # -- scenarios -----------------------------------------------------------------------
    def run(self, scenarios: list[str], done: Callable[[list[ScenarioResult]], None] = lambda _: None
            ) -> list[ScenarioResult]:
        """Run ``scenarios`` in order; ``done`` gets the results so far after each one."""
        out = []
        for s in scenarios:
            began = time.monotonic()
            self.say(f"[{s}] starting")
            result = getattr(self, f"scenario_{s}")()
            result.seconds = round(time.monotonic() - began, 1)
            self.say(f"[{s}] {'skipped' if result.ok is None else 'OK' if result.ok else 'FAILED'} "
                     f"in {result.seconds:.0f} s")
            out.append(result)
            done(out)
        return out

    def scenario_kills(self) -> ScenarioResult:
        result = ScenarioResult("kills", None)
        cfg, job = self._prepare("kills")
        feed = self._feed(cfg, 0)
        for n in range(self.kills):
            point = KILL_POINTS[n % len(KILL_POINTS)]
            target = self.targets[n % len(self.targets)]
            job.start("--processing-time", "2 seconds")
            checkpoint = Path(cfg.lake.checkpoint_path(target))
            # The stream's first batch after a start often replays the batch the kill cut short;
            # aim at a later one so each kill lands in fresh work.
            self._wait_commits(cfg, job, target, 1)
            seen = None
            if point == "random":
                time.sleep(self.rng.uniform(0.0, 4.0))
            else:
                watched = {"offsets": checkpoint / "offsets", "commits": checkpoint / "commits",
                           "delta_commit": Path(cfg.lake.table_path(cfg.pipelines[target].sink.table)) / "_delta_log"}
                seen = watch(watched[point], job, timeout=240)
            uptime = time.monotonic() - job.started
            if not job.running:
                result.ok = False
                result.notes.append(f"kill {n + 1}: the job had exited before the kill: {job.error() or job.tail()}")
                break
            job.kill()
            in_flight = batches(checkpoint / "offsets") > batches(checkpoint / "commits")
            kill = Kill(n + 1, point, target, seen, in_flight, round(uptime, 1))
            result.kills.append(kill)
            self.say(f"  kill {n + 1}/{self.kills}: {point} of {target} (saw {seen}), "
                     f"batch in flight: {in_flight}, after {uptime:.0f} s")
            if point != "random" and seen is None:
                result.notes.append(f"kill {n + 1}: no {point} of {target} within 240 s; killed anyway")
        return self._finish(result, cfg, job, feed)

    def scenario_broker(self) -> ScenarioResult:
        """Two outages: one the job waits through (kafka.outage_wait_s above the outage), one it
        fails on at once (outage_wait_s 5) and is restarted after."""
        from kappalake.ingest.broker import LocalBroker

        result = ScenarioResult("broker", None)
        cfg, job = self._prepare("broker")
        if cfg.broker.mode != "embedded":
            result.notes.append("skipped: broker.mode is external (kappalake does not stop a cluster it does not run)")
            return result
        broker = LocalBroker(cfg.broker)
        feed = self._feed(cfg, 1)
        for mode, wait_s in (("wait", max(300, int(self.outage_s * 3))), ("fail", 5)):
            job.stop()
            job.extra["kafka.outage_wait_s"] = wait_s
            job.start("--processing-time", "2 seconds")
            if not self._wait_commits(cfg, job, self.pipelines[1], 1):
                result.ok = False
                result.notes.append(f"no silver batch before the outage: {job.error() or job.tail()}")
                break
            feed.pause()
            broker.stop()
            self.say(f"  broker stopped for {self.outage_s:.0f} s (kafka.outage_wait_s {wait_s})")
            down = time.monotonic()
            # Waiting: the broker comes back after the outage. Failing: it stays down until the
            # job has noticed, stopped its queries and exited (or 180 s).
            limit = self.outage_s if mode == "wait" else max(self.outage_s, 180.0)
            while time.monotonic() - down < limit and job.running:
                time.sleep(0.5)
            survived, error, after = job.running, job.error(), time.monotonic() - down
            broker.start()
            feed.resume()
            outcome = ("waited and resumed" if survived else
                       f"failed ({error}), exiting {after:.0f} s into the outage, and was restarted")
            self.say(f"  broker back; the job {outcome}")
            result.notes.append(f"outage {self.outage_s:.0f} s, kafka.outage_wait_s {wait_s}: the job {outcome}")
            if survived != (mode == "wait") or (not survived and "Kafka was unreachable" not in error):
                result.ok = False
                result.notes.append(f"expected the job to {'wait' if mode == 'wait' else 'fail naming Kafka'}")
            if not survived:
                job.start("--processing-time", "2 seconds")
            if not self._wait_commits(cfg, job, self.pipelines[0], 2, timeout=400):
                result.ok = False
                result.notes.append(f"no bronze batch after the broker came back: {job.error() or job.tail()}")
                break
        job.extra.pop("kafka.outage_wait_s", None)
        return self._finish(result, cfg, job, feed)

    def scenario_disk_full(self) -> ScenarioResult:
        result = ScenarioResult("disk_full", None)
        mount = self.workdir / "disk_full" / "small"
        mount.mkdir(parents=True, exist_ok=True)
        size_mb, free_mb = 12, 2
        tried = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
                               capture_output=True, text=True)
        if tried.returncode != 0:
            result.notes.append(f"skipped: could not mount a {size_mb} MiB tmpfs to fill ({tried.stderr.strip()}); "
                                "run as root, or put lake.root on a small volume yourself")
            return result
        try:
            cfg, job = self._prepare("disk_full", lake=mount / "lake")
            # Leave the job a little room so it fills the volume in its first batches, not after minutes.
            _ballast(mount / "ballast", keep_free=free_mb * 1024 * 1024)
            feed = self._feed(cfg, 2, self.rate * 3)
            job.start("--processing-time", "2 seconds")
            rc = job.wait(timeout=600)
            error = job.error()
            result.notes.append(f"lake on a {size_mb} MiB tmpfs filled to {free_mb} MiB free: the job exited {rc} "
                                f"when it filled: {error}")
            self.say(f"  disk full: job exited {rc}: {error[:300]}")
            if rc in (None, 0) or "no space left" not in error.lower():
                result.ok = False
                result.notes.append("expected the job to stop with an error naming the full disk")
            subprocess.run(["mount", "-o", "remount,size=4g", str(mount)], check=True)
            result.notes.append("then the filesystem was grown to 4 GiB (space freed) and the job restarted")
            return self._finish(result, cfg, job, feed)
        finally:
            if self._spark is not None:
                self._spark.catalog.clearCache()
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)

    def scenario_permissions(self) -> ScenarioResult:
        result = ScenarioResult("permissions", None)
        cfg, job = self._prepare("permissions")
        feed = self._feed(cfg, 3)
        job.start("--processing-time", "2 seconds")
        silver = self.chains[0][1]
        table = cfg.pipelines[silver].sink.table
        log_dir = Path(cfg.lake.table_path(table)) / "_delta_log"
        if not self._wait_commits(cfg, job, silver, 1):
            result.ok = False
            result.notes.append(f"no silver batch: {job.error() or job.tail()}")
            return self._finish(result, cfg, job, feed)
        lock, unlock = _write_protect(log_dir)
        try:
            rc = job.wait(timeout=300)
            error = job.error()
        finally:
            unlock()
        result.notes.append(f"{table}'s _delta_log made unwritable ({lock}): the job exited {rc}: {error}")
        self.say(f"  permission error: job exited {rc}: {error[:300]}")
        if rc in (None, 0) or not any(s in error.lower() for s in ("permission denied", "not permitted")):
            result.ok = False
            result.notes.append("expected the job to stop with an error naming the permission problem")
        result.notes.append("then write access was restored and the job restarted")
        return self._finish(result, cfg, job, feed)

    def scenario_maintenance(self) -> ScenarioResult:
        from kappalake.ops.maintenance import maintain_table
        from kappalake.pipelines.reprocess import reprocess_range

        result = ScenarioResult("maintenance", None)
        cfg, job = self._prepare("maintenance")
        spark = self.spark(cfg)
        feed = self._feed(cfg, 4)
        job.start("--processing-time", "2 seconds")
        bronze, silver, gold = ([cfg.pipelines[c[i]].sink.table for c in self.chains] for i in range(3))
        if not all(self._wait_commits(cfg, job, c[i], 1) for i in (1, 2) for c in self.chains):
            result.ok = False
            result.notes.append(f"no gold batch: {job.error() or job.tail()}")
            return self._finish(result, cfg, job, feed)
        for rnd in range(2):
            for table in silver[:1] + gold:
                r = reprocess_range(spark, cfg, table)
                result.notes.append(f"round {rnd + 1}: reprocess {table}: {r.before} -> {r.after} rows, "
                                    f"{r.attempts} attempt(s)")
            for table in bronze[:1] + silver:
                m = maintain_table(spark, cfg, table)
                readers = ", ".join(f"{x.pipeline} at v{x.version}" for x in m.readers) or "none"
                result.notes.append(f"round {rnd + 1}: maintain {table}: files {m.files_before} -> {m.files_after} "
                                    f"({m.optimized or 'not optimized'}), VACUUM deleted {m.vacuum_deleted} "
                                    f"(retaining {m.vacuum_retain_hours} h; streams reading it: {readers}), "
                                    f"{m.seconds:.1f} s")
            if not job.running:
                result.ok = False
                result.notes.append(f"the job stopped during maintenance: {job.error() or job.tail()}")
                break
        self.say("  reprocess, OPTIMIZE and VACUUM ran twice while streaming")
        return self._finish(result, cfg, job, feed)

    def close(self) -> None:
        """Kill any job still running (an interrupted scenario's) and stop the Spark session it started."""
        for job in self._jobs:
            job.kill()
        if self._spark is not None and self._own_spark:
            self._spark.stop()
        self._spark = None


def _ballast(path: Path, keep_free: int) -> None:
    """Fill ``path``'s filesystem up to ``keep_free`` bytes of free space."""
    room = shutil.disk_usage(path.parent).free - keep_free
    with path.open("wb") as f:
        while room > 0:
            chunk = min(room, 1024 * 1024)
            f.write(b"\0" * chunk)
            room -= chunk


def _write_protect(path: Path) -> tuple[str, Callable[[], None]]:
    """Make ``path`` unwritable: ``chattr +i`` for root (whom modes do not stop), else mode 0555."""
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(path)], check=True)
        return "chattr +i", lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    mode = path.stat().st_mode
    path.chmod(0o555)
    return "chmod 555", lambda: path.chmod(mode)


def summary_table(results: list[ScenarioResult]) -> str:
    """One line per scenario: events in, rows per layer, duplicates and losses."""
    lines = [f"{'scenario':<13}{'result':<9}{'events':>9}{'bronze':>9}{'silver':>9}{'quarant.':>9}"
             f"{'resends':>9}{'dupl.':>7}{'lost':>6}{'gold ok':>9}{'delta ok':>10}{'s':>7}"]
    for r in results:
        b = [c for c in r.checks if c.check == "bronze"]
        s = [c for c in r.checks if c.check == "silver"]
        g = [c for c in r.checks if c.check == "gold"]
        d = [c for c in r.checks if c.check == "delta"]
        total = lambda cs, k: sum(c.figures.get(k, 0) for c in cs)  # noqa: E731
        state = "skipped" if r.ok is None else "ok" if r.ok else "FAILED"
        lines.append(f"{r.scenario:<13}{state:<9}{sum(r.events.values()):>9,}{total(b, 'rows'):>9,}"
                     f"{total(s, 'rows'):>9,}{total(s, 'quarantined'):>9,}{total(s, 'resends_dropped'):>9,}"
                     f"{total(b, 'duplicates') + total(s, 'duplicate_events'):>7,}"
                     f"{total(b, 'missing') + total(s, 'lost'):>6,}"
                     f"{sum(c.ok for c in g):>5}/{len(g):<3}{sum(c.ok for c in d):>6}/{len(d):<3}{r.seconds:>7.0f}")
    return "\n".join(lines)


def write_results(results: list[ScenarioResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "scenarios": [asdict(r) for r in results]}, indent=2, default=str))
