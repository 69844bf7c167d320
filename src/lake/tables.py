"""Delta tables: creation from a schema with the configured properties, and summaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from kappalake.config import LakeConf
from kappalake.frames import local_frame
from kappalake.lake.deltalog import has_orphan_log, has_versions
from kappalake.lake.files import delete_path


def ensure_table(spark: SparkSession, path: str, schema: StructType, partition_by: list[str],
                 properties: dict[str, str]) -> None:
    """Create the Delta table at ``path`` unless it exists (idempotent, safe to race).

    Columns are created nullable all the way down: Delta cannot enforce NOT NULL inside
    arrays and maps, and a stream's inferred nullability is not a contract. A log folder
    left without any version by a process killed while creating the table is removed and
    the creation tried again (Delta refuses the path otherwise, and the job could never
    start again); the log is only looked at when the creation fails.
    """
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(nullable(schema))
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    for key, value in properties.items():
        builder = builder.property(key, value)
    try:
        builder.execute()
    except AnalysisException:
        if not has_orphan_log(spark, path):
            raise
        delete_path(spark, path.rstrip("/") + "/_delta_log")
        builder.execute()


def table_exists(spark: SparkSession, path: str) -> bool:
    """Whether a Delta table is at ``path`` (a folder without a committed version holds none).

    ``isDeltaTable`` answers from Delta's cached view of the path's log, which it does not
    refresh: a log folder it once saw without a version (a table another process was creating
    at that moment) stays "no table" for this session. When it says no but the log holds a
    version, reading the table refreshes that view.
    """
    if DeltaTable.isDeltaTable(spark, path):
        return True
    if not has_versions(spark, path):
        return False
    spark.read.format("delta").load(path)  # refreshes Delta's cached log of the path
    return True


def read_table(spark: SparkSession, path: str) -> DataFrame | None:
    """The Delta table at ``path`` as a DataFrame, or None while there is none."""
    return spark.read.format("delta").load(path) if table_exists(spark, path) else None


def nullable(dt: DataType) -> DataType:
    """``dt`` with every field, array element and map value nullable."""
    if isinstance(dt, StructType):
        return StructType([StructField(f.name, nullable(f.dataType), True, f.metadata) for f in dt.fields])
    if isinstance(dt, ArrayType):
        return ArrayType(nullable(dt.elementType), True)
    if isinstance(dt, MapType):
        return MapType(dt.keyType, nullable(dt.valueType), True)
    return dt


@dataclass(frozen=True)
class TableSummary:
    table: str
    path: str
    exists: bool
    rows: int = 0
    files: int = 0
    size_bytes: int = 0
    version: int = -1


def summarize_tables(spark: SparkSession, lake: LakeConf, tables: list[str]) -> list[TableSummary]:
    """Rows, files, bytes and latest version of ``tables`` (``Config.tables()``: every configured one)."""
    out = []
    for table in tables:
        path = lake.table_path(table)
        if not table_exists(spark, path):
            out.append(TableSummary(table, path, False))
            continue
        detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select("numFiles", "sizeInBytes").first()
        version = DeltaTable.forPath(spark, path).history(1).select("version").first()[0]
        rows = spark.read.format("delta").load(path).count()
        out.append(TableSummary(table, path, True, rows, detail["numFiles"], detail["sizeInBytes"], version))
    return out


def write_rows(spark: SparkSession, lake: LakeConf, table: str, schema: StructType, rows: list[dict[str, Any]],
               partition_by: list[str]) -> None:
    """Append ``rows`` (dicts by column name) to the lake's table ``table``, created if missing."""
    if not rows:
        return
    path = lake.table_path(table)
    ensure_table(spark, path, schema, partition_by, dict(lake.table_properties))
    local_frame(spark, rows, schema).write.format("delta").mode("append").save(path)
