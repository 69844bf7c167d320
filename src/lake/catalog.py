"""The lake's tables in Spark's session catalog: ``SELECT * FROM gold.sessions`` in Spark SQL.

Each configured table that exists is registered as an external Delta table over its path
(database = layer), so Spark SQL, notebooks and BI tools connected to the session see the
logical names, with Delta time travel: ``SELECT * FROM gold.sessions VERSION AS OF 3``.
"""

from __future__ import annotations

import os
import re

from pyspark.sql import SparkSession

from kappalake.config import LakeConf
from kappalake.lake.tables import table_exists


def absolute(path: str) -> str:
    """``path`` as the catalog needs it: URIs (s3://, file:/) unchanged, local paths made absolute."""
    return path if re.match(r"^[a-zA-Z][\w+.-]*:", path) else os.path.abspath(path)


def register_tables(spark: SparkSession, lake: LakeConf, tables: list[str]) -> list[str]:
    """Register each of ``tables`` (``Config.tables()``: every configured one) that exists as
    ``layer.name``; returns the registered names."""
    done = []
    for table in tables:
        path = absolute(lake.table_path(table))
        if not table_exists(spark, path):
            continue
        layer = table.split(".", 1)[0]
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
        registered = spark.catalog.tableExists(table) and _location(spark, table) == path
        if not registered:
            spark.sql(f"DROP TABLE IF EXISTS {table}")  # a lake root changed in this session
            spark.sql(f"CREATE TABLE {table} USING DELTA LOCATION '{path}'")
        done.append(table)
    return done


def _location(spark: SparkSession, table: str) -> str:
    """The registered location, from the catalog entry alone (DESCRIBE DETAIL would load the log)."""
    layer, name = table.split(".", 1)
    row = spark.sql(f"SHOW TABLE EXTENDED IN `{layer}` LIKE '{name}'").first()
    found = re.search(r"^Location: (.*)$", row["information"], re.M) if row else None
    return re.sub(r"^file:", "", found.group(1)) if found else ""
