"""Enrichment by stream-static joins with the dimension tables.

The dimension DataFrames are passed in (the runner reads them from Delta), so these are pure
functions. Joined to a stream, a Delta dimension is re-read at its latest version for every
micro-batch, so updates to the catalog or plans show up without restarting the query.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def enrich_clickstream(df: DataFrame, products: DataFrame, plans: DataFrame) -> DataFrame:
    """Add product name, category, brand and base price, and the bandwidth plans offered
    where the user is (``offered_plans``, cheapest first: the location-based offer).

    Left joins: an unknown product or a city without plans keeps the event, with nulls.
    """
    p = products.select(
        F.col("product_id").alias("_pid"), F.col("name").alias("product_name"),
        F.col("category").alias("product_category"), F.col("brand").alias("product_brand"),
        F.col("base_price").alias("product_base_price"))
    offers = (
        plans.groupBy(F.col("country").alias("_country"), F.col("city").alias("_city"))
        .agg(F.sort_array(F.collect_list(F.struct(
            F.col("monthly_price"), F.col("plan_id"), F.col("plan_name"), F.col("download_mbps"),
            F.col("upload_mbps"), F.col("currency")))).alias("offered_plans"))
    )
    return (
        df.join(F.broadcast(p), df["product_id"] == p["_pid"], "left").drop("_pid")
        .join(F.broadcast(offers), (df["geo_country"] == offers["_country"]) & (df["geo_city"] == offers["_city"]), "left")
        .drop("_country", "_city")
    )


def enrich_telemetry(df: DataFrame, zones: DataFrame) -> DataFrame:
    """Add zone name, building and capacity to badge events (vehicles keep nulls)."""
    z = zones.select(F.col("zone_id").alias("_zid"), F.col("name").alias("zone_name"),
                     F.col("building").alias("zone_building"), F.col("capacity").alias("zone_capacity"))
    return df.join(F.broadcast(z), df["zone_id"] == z["_zid"], "left").drop("_zid")
