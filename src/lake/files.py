"""Files under the lake's root through Hadoop's FileSystem, so local disks, S3 and HDFS work alike."""

from __future__ import annotations

import re

from pyspark.sql import SparkSession

# A Delta log version: a commit (NNN.json) or a checkpoint (NNN.checkpoint[.k.n].parquet, NNN.checkpoint.uuid.json).
_VERSION_FILE = re.compile(r"^\d{20}\.(json|checkpoint\..*)$")


def hadoop_path(spark: SparkSession, path: str):  # noqa: ANN201 - py4j objects
    """``(FileSystem, Path)`` for ``path``, from the session's Hadoop configuration."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p  # noqa: SLF001


def delete_path(spark: SparkSession, path: str) -> None:
    """Delete ``path`` and everything under it (nothing happens if it does not exist)."""
    fs, p = hadoop_path(spark, path)
    fs.delete(p, True)


def has_orphan_log(spark: SparkSession, table_path: str) -> bool:
    """Whether ``table_path`` has a ``_delta_log`` folder that holds no version of the table.

    Delta makes the folder before it writes version 0; a process killed in between leaves
    a path that is no table and that Delta will not create a table at either.
    """
    fs, log = hadoop_path(spark, table_path.rstrip("/") + "/_delta_log")
    if not fs.exists(log):
        return False
    return not any(_VERSION_FILE.match(s.getPath().getName()) for s in fs.listStatus(log))
