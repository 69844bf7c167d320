"""Batch job: write the seeded reference data as Delta dimension tables.

Overwrites each table in one Delta commit (readers see the old or the new version, never a
mix), so re-running it is safe and a changed seed or catalog size is picked up by the
stream-static joins of running queries at their next micro-batch.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.sql.types import DecimalType, DoubleType, IntegerType, StringType, StructField, StructType

from kappalake.config import Config
from kappalake.ingest.reference import Reference
from kappalake.lake.tables import ensure_table

MONEY = DecimalType(12, 2)  # EUR, exact: the type of silver's price and of gold's money columns
SCHEMAS = {
    "products": StructType([
        StructField("product_id", StringType(), False), StructField("name", StringType(), False),
        StructField("category", StringType(), False), StructField("brand", StringType(), False),
        StructField("base_price", MONEY, False), StructField("popularity_rank", IntegerType(), False)]),
    "zones": StructType([
        StructField("zone_id", StringType(), False), StructField("name", StringType(), False),
        StructField("building", StringType(), False), StructField("capacity", IntegerType(), False),
        StructField("lat", DoubleType(), False), StructField("lon", DoubleType(), False)]),
    "bandwidth_plans": StructType([
        StructField("plan_id", StringType(), False), StructField("country", StringType(), False),
        StructField("city", StringType(), False), StructField("plan_name", StringType(), False),
        StructField("download_mbps", IntegerType(), False), StructField("upload_mbps", IntegerType(), False),
        StructField("monthly_price", MONEY, False), StructField("currency", StringType(), False)]),
}


def reference_rows(cfg: Config) -> dict[str, list[dict]]:
    """The rows of each dimension for the configured seed, as plain dicts."""
    ref = Reference(cfg.reference.seed, cfg.reference.products)
    return {"products": [asdict(p) for p in ref.products], "zones": [asdict(z) for z in ref.zones],
            "bandwidth_plans": [asdict(b) for b in ref.bandwidth_plans]}


def write_reference_tables(spark: SparkSession, cfg: Config) -> dict[str, int]:
    """(Re)write dim.products, dim.zones and dim.bandwidth_plans; return rows per table name."""
    written = {}
    for kind, rows in reference_rows(cfg).items():
        table = cfg.reference.tables[kind]
        path = cfg.lake.table_path(table)
        schema = SCHEMAS[kind]
        ensure_table(spark, path, schema, [], dict(cfg.lake.table_properties))
        money = {f.name for f in schema.fields if f.dataType == MONEY}
        df = spark.createDataFrame([tuple(Decimal(str(r[f])) if f in money else r[f] for f in schema.fieldNames())
                                    for r in rows], schema)
        # overwriteSchema: a lake written by an older release held prices as double
        df.coalesce(1).write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        written[table] = len(rows)
    return written
