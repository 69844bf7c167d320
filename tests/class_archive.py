"""A class-data-sharing archive of the suite's Spark JVMs: the classes a Spark + Delta + Kafka
session loads, parsed and verified once and then mapped by every JVM the suite starts (its two
sessions, each job, CLI and spark-submit process). Measured on 2 cores: a session with Delta
up and its first Delta write and read 14.8 -> 10.4 s; the suite starts dozens of such JVMs.

Built once per machine and Spark/Delta version under .kappalake/cache, by a small Spark run
with ``-XX:ArchiveClassesAtExit`` (JDK 13+). A JVM whose class path differs (the broker, a
standalone worker's executors) or a stale archive simply runs without it: the JVM checks the
class path and jar times itself, and its cds warnings are switched off."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def archive_path(cache: Path) -> Path:
    return cache / f"spark-classes-{version('pyspark')}-{version('delta_spark')}.jsa"


def ensure(cache: Path, repo: Path, java_options: str) -> Path | None:
    """The archive for these versions, built now if missing; None when it cannot be built."""
    archive = archive_path(cache)
    if archive.is_file():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    env = {**os.environ, "JAVA_TOOL_OPTIONS": f"{java_options} -XX:ArchiveClassesAtExit={partial} {QUIET}"}
    try:
        run = subprocess.run([sys.executable, "-m", "tests.class_archive"], env=env, cwd=repo, timeout=300,
                             capture_output=True, text=True)
        pid = int(run.stdout.split()[-1]) if run.returncode == 0 and run.stdout.split() else None
    except (subprocess.TimeoutExpired, ValueError):
        pid = None
    if pid is None:
        return None
    deadline = time.monotonic() + 120  # the JVM writes the archive as it exits, after Python has
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid) or not partial.is_file():
        return None
    partial.rename(archive)
    return archive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return ""


def main() -> None:
    """What most of the suite's JVMs do early: a session with Delta and the Kafka connector, a Delta
    write and read, one streaming micro-batch into Delta; prints the JVM's pid last."""
    from kappalake.config import load_config
    from kappalake.session import get_spark

    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        spark = get_spark(load_config("local", repo / "conf", overrides={
            "spark.master": "local[1]", "spark.conf.spark.ui.enabled": "false", "lake.root": tmp,
            "lake.checkpoint_root": f"{tmp}/_checkpoints", "monitoring.json_log": None}))
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        spark.range(10).write.format("delta").save(f"{tmp}/t")
        spark.read.format("delta").load(f"{tmp}/t").count()
        spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9").option("subscribe", "x").load()
        (spark.readStream.format("delta").load(f"{tmp}/t").writeStream.format("delta")
         .option("checkpointLocation", f"{tmp}/c").trigger(availableNow=True).start(f"{tmp}/s").awaitTermination())
        spark.stop()
    print(pid)


if __name__ == "__main__":
    main()
