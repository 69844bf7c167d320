"""What a Delta table's log references, read from the log once.

The files any version of a table reads are the files of the oldest state the log can rebuild
(a checkpoint, when older commits were cleaned up) plus every file a commit since then added;
so one pass over the commits answers for every version, where loading each version's
snapshot costs a Spark job per version (seconds per hundred versions, hours on a table a
stream has committed to for months).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.lake.files import hadoop_path

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")
_SCHEMA = "add struct<path: string>, _corrupt_record string"
# Any file of a version: a commit, its checksum, a checkpoint (classic, multi-part, v2), a log compaction.
_VERSION_FILE = re.compile(r"^\d{20}\.")


@dataclass
class LogScan:
    """The versions the log holds, those that cannot be read (and why), and the files referenced."""

    versions: list[int] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    referenced: set[str] = field(default_factory=set)


def scan_log(spark: SparkSession, table_path: str) -> LogScan:
    """Read the log of the Delta table at ``table_path``: its versions and every data file any of them reads."""
    fs, root = hadoop_path(spark, table_path)
    log, table_dir = root.toString().rstrip("/") + "/_delta_log", root.toUri().getPath()
    names = [s.getPath().getName() for s in fs.listStatus(hadoop_path(spark, log)[1])]
    commits = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
    checkpoints = sorted({int(m.group(1)) for n in names if (m := _CHECKPOINT.match(n))})
    out = LogScan()
    if not commits:
        out.unreadable.append("no commit in the log")
        return out
    first = commits[0]
    base = [c for c in checkpoints if c <= first]
    if first > 0 and not base:
        out.unreadable.append(f"versions before {first} are gone and no checkpoint rebuilds version {first}")
    if base and first > 0:
        # The log was cleaned up to a checkpoint: its state is where the readable versions start.
        files = [f"{log}/{n}" for n in names if (m := _CHECKPOINT.match(n)) and int(m.group(1)) == base[-1]]
        rows = spark.read.parquet(*files).where("add IS NOT NULL").select("add.path").collect()
        out.referenced |= {_absolute(table_dir, r[0]) for r in rows}
        commits = [c for c in commits if c > base[-1]]
        out.versions.append(base[-1])
    expected = range(commits[0], commits[-1] + 1) if commits else range(0)
    present = set(commits)
    out.unreadable += [f"version {v}: its commit file is missing" for v in expected if v not in present]
    out.versions += commits
    if commits:
        # A file that cannot be read at all (a checksum mismatch) yields no row rather than
        # failing the job: every commit holds a commitInfo line, so a version without rows is one.
        read = (spark.read.schema(_SCHEMA).option("mode", "PERMISSIVE").option("ignoreCorruptFiles", "true")
                .json([f"{log}/{v:020d}.json" for v in commits])
                .select("add.path", "_corrupt_record", F.input_file_name().alias("file")))
        seen = set()
        for path, corrupt, file in read.collect():
            version = int(file.rsplit("/", 1)[-1].split(".", 1)[0])
            seen.add(version)
            if corrupt is not None:
                out.unreadable.append(f"version {version}: unparsable line {corrupt[:120]!r}")
            elif path is not None:
                out.referenced.add(_absolute(table_dir, path))
        out.unreadable += [f"version {v}: its commit file cannot be read" for v in commits if v not in seen]
    out.unreadable = sorted(set(out.unreadable), key=out.unreadable.index)
    return out


def has_orphan_log(spark: SparkSession, table_path: str) -> bool:
    """Whether ``table_path`` has a ``_delta_log`` folder that holds no version of the table.

    Delta makes the folder before it writes version 0; a process killed in between leaves
    a path that is no table and that Delta will not create a table at either.
    """
    return _log_state(spark, table_path) == "empty"


def has_versions(spark: SparkSession, table_path: str) -> bool:
    """Whether ``table_path``'s ``_delta_log`` holds a version of the table (read from the
    filesystem, not from Delta's cached view of the log)."""
    return _log_state(spark, table_path) == "versions"


def _log_state(spark: SparkSession, table_path: str) -> str:
    fs, log = hadoop_path(spark, table_path.rstrip("/") + "/_delta_log")
    if not fs.exists(log):
        return "none"
    names = [s.getPath().getName() for s in fs.listStatus(log)]
    return "versions" if any(_VERSION_FILE.match(n) or n == "_last_checkpoint" for n in names) else "empty"


def _absolute(table_dir: str, path: str) -> str:
    """The filesystem path of an ``add.path`` (a URI, relative to the table unless absolute)."""
    parts = urlsplit(path)
    if parts.scheme:
        return unquote(parts.path)
    return f"{table_dir.rstrip('/')}/{unquote(path)}"
