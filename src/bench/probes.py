"""What the benchmark samples besides rows: process memory, machine and versions, percentiles."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil


def driver_jvm_pid(spark) -> int | None:
    """The Spark driver's JVM: the java process under this Python process (local mode runs
    executors in it too)."""
    me = psutil.Process()
    for child in me.children(recursive=True):
        try:
            if "java" in child.name() and any("SparkSubmit" in a for a in child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


@dataclass(eq=False)  # a Thread must stay hashable
class MemorySampler(threading.Thread):
    """Samples the RSS of named processes every ``every_s`` seconds, plus extra gauges."""

    pids: dict[str, int | None]
    every_s: float = 5.0
    gauges: dict = field(default_factory=dict)  # name -> callable returning a number or None
    samples: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True, name="bench-memory")
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.every_s)

    def sample(self) -> None:
        row: dict = {"t_s": round(time.monotonic() - self._t0, 1)}
        for name, pid in self.pids.items():
            try:
                row[f"{name}_rss_mib"] = round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid else None
            except psutil.Error:
                row[f"{name}_rss_mib"] = None
        for name, gauge in self.gauges.items():
            try:
                row[name] = gauge()
            except Exception:  # noqa: BLE001 - a gauge failing must not end the sampling
                row[name] = None
        self.samples.append(row)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        self.sample()


def fifths(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last fifth of ``values`` (at least one value each)."""
    n = max(1, len(values) // 5)
    return sum(values[:n]) / n, sum(values[-n:]) / n


def growth(samples: list[dict], key: str, skip_s: float) -> dict:
    """Mean of ``key`` in the first and the last fifth of the samples after ``skip_s`` of warm-up,
    and the growth between them (0.05 = 5%)."""
    vals = [s[key] for s in samples if s.get(key) is not None and s["t_s"] >= skip_s]
    if len(vals) < 4:
        return {"first": None, "last": None, "growth": None, "max": None}
    first, last = fifths(vals)
    return {"first": round(first, 1), "last": round(last, 1), "growth": round(last / first - 1, 4) if first else None,
            "max": max(vals)}


def percentiles(values: list[float], ps=(50, 95, 99)) -> dict:
    """Nearest-rank percentiles, the count and the max of ``values``."""
    if not values:
        return {f"p{p}": None for p in ps} | {"count": 0, "max": None}
    v = sorted(values)
    out = {f"p{p}": v[min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))] for p in ps}
    return out | {"count": len(v), "max": v[-1], "mean": round(sum(v) / len(v), 1)}


def machine_info(spark=None) -> dict:
    """CPU, memory, OS and the versions of everything measured."""
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    java = ""
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    versions = {}
    for dist in ("pyspark", "delta-spark", "kafka-python", "great-expectations", "deltalake"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    rev = ""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(), "python": platform.python_version(), "java": java, "versions": versions,
        "kappalake_commit": rev,
    }
    if spark is not None:
        info["spark_master"] = spark.sparkContext.master
        info["spark"] = spark.version
        info["shuffle_partitions"] = spark.conf.get("spark.sql.shuffle.partitions")
    return info
