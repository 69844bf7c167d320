"""A class-data-sharing archive of the suite's Spark JVMs: the classes a Spark + Delta + Kafka
session loads, parsed and verified once and then mapped by every JVM the suite starts (its two
sessions, each job, CLI and spark-submit process). Measured on 2 cores: a session with Delta
up and its first Delta write and read 14.8 -> 10.4 s; the suite starts dozens of such JVMs.

Built once per checkout, JDK and set of Spark jars under .kappalake/cache, by a small Spark run
whose driver has ``-XX:ArchiveClassesAtExit`` (JDK 13+); a build that fails leaves a ``.failed``
stamp there and is not retried (delete it to try again). A JVM whose class path differs (the
broker) or a stale archive simply runs without it: the JVM checks the class path and jar times
itself, and its cds warnings are switched off."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def archive_path(cache: Path) -> Path:
    """Named by what makes an archive stale: the JDK and Spark's jars (a JVM skips a stale one)."""
    import pyspark

    java = Path(shutil.which("java") or "java").resolve()
    jars = Path(pyspark.__file__).parent / "jars"
    stamp = f"{java}:{_mtime(java)}:{_mtime(jars)}:{version('delta_spark')}"
    return cache / f"spark-classes-{version('pyspark')}-{hashlib.sha1(stamp.encode()).hexdigest()[:10]}.jsa"


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def ensure(cache: Path, repo: Path, java_options: str) -> Path | None:
    """The archive for this JDK and these jars, built now if missing; None when it cannot be built
    (remembered by a ``.failed`` stamp beside it, so later runs do not try again)."""
    archive = archive_path(cache)
    failed = archive.with_suffix(".failed")
    if archive.is_file():
        return archive
    if failed.exists():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    env = {**os.environ, "JAVA_TOOL_OPTIONS": f"{java_options} {QUIET}"}
    try:
        # Only the driver dumps: spark-class's launcher JVM would write its own small archive first.
        # The JVM writes the archive as it exits; it shares the captured stdout, so run() returns
        # only once the JVM has exited too.
        run = subprocess.run([sys.executable, "-m", "tests.class_archive", str(partial)], env=env, cwd=repo,
                             timeout=300, capture_output=True, text=True)
        if run.returncode != 0 or not partial.is_file() or partial.stat().st_size < 1 << 20:
            raise OSError(f"no archive written (exit {run.returncode})")
        os.replace(partial, archive)
        return archive
    except (OSError, subprocess.SubprocessError) as e:
        failed.write_text(f"{e}\n")
        return None
    finally:
        partial.unlink(missing_ok=True)


def main(archive: str) -> None:
    """What most of the suite's JVMs do early: a session with Delta and the Kafka connector, a Delta
    write and read, one streaming micro-batch into Delta. The driver JVM dumps its classes to
    ``archive`` as it exits."""
    from kappalake.config import load_config
    from kappalake.session import get_spark

    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        spark = get_spark(load_config("local", repo / "conf", overrides={
            "spark.master": "local[1]", "spark.conf.spark.ui.enabled": "false", "lake.root": tmp,
            "lake.checkpoint_root": f"{tmp}/_checkpoints", "monitoring.json_log": None,
            "spark.conf.spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={archive}"}))
        spark.range(10).write.format("delta").save(f"{tmp}/t")
        spark.read.format("delta").load(f"{tmp}/t").count()
        spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9").option("subscribe", "x").load()
        (spark.readStream.format("delta").load(f"{tmp}/t").writeStream.format("delta")
         .option("checkpointLocation", f"{tmp}/c").trigger(availableNow=True).start(f"{tmp}/s").awaitTermination())
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
