"""Enrichment by stream-static joins with the dimension tables.

The dimension DataFrames are passed in (the runner reads them from Delta), so these are pure
functions. Joined to a stream, a Delta dimension is re-read at its latest version for every
micro-batch, so updates to the catalog or plans show up without restarting the query.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


OFFER_NAMESPACE = "offer/"  # offer_id = sha2('offer/' || event_id): never equal to an event id


def plans_by_place(plans: DataFrame) -> DataFrame:
    """``dim.bandwidth_plans`` as one row per place: ``_country``, ``_city`` and ``offered_plans``,
    the plans there as structs, cheapest first (``monthly_price`` leads the struct)."""
    return plans.groupBy(F.col("country").alias("_country"), F.col("city").alias("_city")).agg(
        F.sort_array(F.collect_list(F.struct(
            F.col("monthly_price"), F.col("plan_id"), F.col("plan_name"), F.col("download_mbps"),
            F.col("upload_mbps"), F.col("currency")))).alias("offered_plans"))


def _join_offers(df: DataFrame, offers: DataFrame, country: str, city: str) -> DataFrame:
    on = (df[country] == offers["_country"]) & (df[city] == offers["_city"])
    return df.join(F.broadcast(offers), on, "left").drop("_country", "_city")


def enrich_clickstream(df: DataFrame, products: DataFrame, plans: DataFrame) -> DataFrame:
    """Add product name, category, brand and base price, and the bandwidth plans offered
    where the user is (``offered_plans``, cheapest first: the location-based offer).

    Left joins: an unknown product or a city without plans keeps the event, with nulls.
    """
    p = products.select(
        F.col("product_id").alias("_pid"), F.col("name").alias("product_name"),
        F.col("category").alias("product_category"), F.col("brand").alias("product_brand"),
        F.col("base_price").alias("product_base_price"))
    with_products = df.join(F.broadcast(p), df["product_id"] == p["_pid"], "left").drop("_pid")
    return _join_offers(with_products, plans_by_place(plans), "geo_country", "geo_city")


def enrich_signups(df: DataFrame, plans: DataFrame) -> DataFrame:
    """Add the offer made to each sign-up: ``offered_plans`` (the plans where the customer
    lives, cheapest first; an empty array, not null, where none are), ``plans_offered`` (their
    number) and ``offer_id``.

    ``offer_id`` is ``sha2('offer/' || event_id, 256)``: a function of the sign-up alone, so a
    resent, replayed or reprocessed sign-up gives the same offer id (the idempotency key of
    whatever sends the offer), while the namespace keeps it apart from every event id.
    """
    offers = plans_by_place(plans)
    plan_list = offers.schema["offered_plans"].dataType
    out = _join_offers(df, offers, "country", "city")
    listed = F.coalesce(F.col("offered_plans"), F.array().cast(plan_list))
    return out.withColumns({
        "offered_plans": listed,
        "plans_offered": F.size(listed),
        "offer_id": F.sha2(F.concat(F.lit(OFFER_NAMESPACE), F.col("event_id")), 256),
    })


def enrich_telemetry(df: DataFrame, zones: DataFrame) -> DataFrame:
    """Add zone name, building and capacity to badge events (vehicles keep nulls)."""
    z = zones.select(F.col("zone_id").alias("_zid"), F.col("name").alias("zone_name"),
                     F.col("building").alias("zone_building"), F.col("capacity").alias("zone_capacity"))
    return df.join(F.broadcast(z), df["zone_id"] == z["_zid"], "left").drop("_zid")
