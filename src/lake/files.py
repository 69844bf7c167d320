"""Files under the lake's root through Hadoop's FileSystem, so local disks, S3 and HDFS work alike."""

from __future__ import annotations

from pyspark.sql import SparkSession

def hadoop_path(spark: SparkSession, path: str):  # noqa: ANN201 - py4j objects
    """``(FileSystem, Path)`` for ``path``, from the session's Hadoop configuration."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p  # noqa: SLF001


def delete_path(spark: SparkSession, path: str) -> None:
    """Delete ``path`` and everything under it (nothing happens if it does not exist)."""
    fs, p = hadoop_path(spark, path)
    fs.delete(p, True)


def read_lines(spark: SparkSession, path: str) -> list[str]:
    """The lines of the text file at ``path``."""
    fs, p = hadoop_path(spark, path)
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    stream = fs.open(p)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream))
        lines = []
        while (line := reader.readLine()) is not None:
            lines.append(line)
        return lines
    finally:
        stream.close()
