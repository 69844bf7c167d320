"""Gold clickstream aggregates over silver.clickstream (streaming or static alike).

Money is summed as ``decimal(18,2)`` so totals are exact and independent of the order in
which micro-batches arrive.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from kappalake.transforms.windows import (count_where, distinct_where, interval_seconds, ratio, sum_where, watermarked,
                                         window_bounds)

PLAYBACK = ("video_play", "buffering")


def _is(*event_types: str) -> Column:
    return F.col("event_type").isin(*event_types)


def _revenue() -> Column:
    """Purchase value of a row (price x quantity), exact decimal; null for other events."""
    return F.when(_is("purchase"), F.col("price").cast("decimal(12,2)") * F.coalesce(F.col("quantity"), F.lit(1)))


def _money(col: Column) -> Column:
    return F.coalesce(F.sum(col), F.lit(0)).cast("decimal(18,2)")


def page_minute_metrics(df: DataFrame, window: str = "1 minute", lateness: str = "1 hour") -> DataFrame:
    """Per ``window`` per page and product: events, views, clicks, add-to-carts, purchases,
    units, revenue and unique users (``product_id`` is null on pages without a product)."""
    return (
        watermarked(df, lateness)
        .groupBy(F.window("event_time", window).alias("window"), "page", "product_id")
        .agg(
            F.count(F.lit(1)).alias("events"),
            count_where(_is("page_view")).alias("views"),
            count_where(_is("click")).alias("clicks"),
            count_where(_is("add_to_cart")).alias("add_to_carts"),
            count_where(_is("purchase")).alias("purchases"),
            sum_where("quantity", _is("purchase")).cast("long").alias("units"),
            _money(_revenue()).alias("revenue"),
            distinct_where("user_id").alias("unique_users"),
        )
        .select(*window_bounds(), "page", "product_id", "events", "views", "clicks", "add_to_carts", "purchases",
                "units", "revenue", "unique_users")
    )


def sessions(df: DataFrame, gap: str = "5 minutes", lateness: str = "10 minutes") -> DataFrame:
    """One row per client session (a session window per ``session_id``: a pause longer
    than ``gap`` starts a new one): duration, pages, products viewed, cart and purchase
    activity, revenue and whether it converted.

    On a stream a session is written once it is over: no event for ``gap`` plus ``lateness``.
    """
    t = F.col("event_time")
    return (
        watermarked(df, lateness)
        .groupBy(F.session_window("event_time", gap).alias("session"), "session_id")
        .agg(
            F.max("user_id").alias("user_id"),
            F.max("app").alias("app"),
            F.max("device").alias("device"),
            F.min(t).alias("started_at"),
            F.max(t).alias("ended_at"),
            F.min_by("page", t).alias("landing_page"),
            F.max_by("page", t).alias("exit_page"),
            F.min_by("referrer", t).alias("referrer"),
            F.count(F.lit(1)).alias("events"),
            count_where(_is("page_view")).alias("page_views"),
            distinct_where("page").alias("distinct_pages"),
            distinct_where("product_id", _is("page_view")).alias("products_viewed"),
            count_where(_is("add_to_cart")).alias("add_to_carts"),
            count_where(_is("purchase")).alias("purchases"),
            _money(_revenue()).alias("revenue"),
            count_where(_is("video_play")).alias("videos_played"),
            count_where(_is("error")).alias("errors"),
        )
        .select(
            "session_id", "user_id", "app", "device", "started_at", "ended_at",
            (F.unix_millis("ended_at") - F.unix_millis("started_at")).cast("double").__truediv__(1000).alias("duration_s"),
            "landing_page", "exit_page", "referrer", "events", "page_views", "distinct_pages", "products_viewed",
            "add_to_carts", "purchases", "revenue", (F.col("purchases") > 0).alias("converted"), "videos_played",
            "errors", F.to_date("started_at").alias("session_date"),
        )
    )


def hourly_funnel(df: DataFrame, window: str = "1 hour", lateness: str = "1 hour") -> DataFrame:
    """Conversion funnel per ``window`` and app: distinct sessions reaching each step
    (any event, product view, add to cart, checkout, purchase), step rates and revenue."""
    s = "session_id"
    return (
        watermarked(df, lateness)
        .groupBy(F.window("event_time", window).alias("window"), "app")
        .agg(
            distinct_where(s).alias("sessions"),
            distinct_where(s, _is("page_view") & F.col("product_id").isNotNull()).alias("viewed_product"),
            distinct_where(s, _is("add_to_cart")).alias("added_to_cart"),
            distinct_where(s, _is("checkout")).alias("checked_out"),
            distinct_where(s, _is("purchase")).alias("purchased"),
            _money(_revenue()).alias("revenue"),
        )
        .select(
            *window_bounds(), "app", "sessions", "viewed_product", "added_to_cart", "checked_out", "purchased",
            ratio(F.col("added_to_cart"), F.col("viewed_product")).alias("view_to_cart"),
            ratio(F.col("purchased"), F.col("added_to_cart")).alias("cart_to_purchase"),
            ratio(F.col("purchased"), F.col("sessions")).alias("conversion_rate"),
            "revenue",
        )
    )


def concurrent_viewers(df: DataFrame, horizon: str = "40 seconds", lateness: str = "1 hour") -> DataFrame:
    """Viewers per second (the Keystone aggregate): for each second, the sessions whose
    latest video event in the ``horizon`` ending at that second is a ``video_play`` or
    ``buffering`` (players report at least that often while playing; a ``video_stop``
    ends the viewing). Also playback starts, stalls and stall milliseconds in the horizon.
    """
    video = df.filter(_is("video_play", "buffering", "video_stop"))
    last_per_session = (
        "filter(_ev, (x, i) -> x.playing AND (i = size(_ev) - 1 OR get(_ev, i + 1).session_id != x.session_id))"
    )
    return (
        watermarked(video, lateness)
        .groupBy(F.window("event_time", horizon, "1 second").alias("window"))
        .agg(
            F.collect_set(F.struct("session_id", "event_time", _is(*PLAYBACK).alias("playing"))).alias("_ev"),
            count_where(_is("video_play")).alias("starts"),
            count_where(_is("buffering")).alias("stalls"),
            sum_where("buffer_ms", _is("buffering")).cast("long").alias("stall_ms"),
        )
        .withColumn("_ev", F.array_sort("_ev"))  # by session, then time: a session's last event ends its run
        .select(F.col("window.end").alias("second"), F.size(F.expr(last_per_session)).alias("viewers"),
                "starts", "stalls", "stall_ms")
    )


def product_demand(df: DataFrame, window: str = "1 hour", slide: str = "15 minutes",
                   lateness: str = "1 hour") -> DataFrame:
    """Demand and trend features per product for price-adjustment models: every ``slide``,
    the trailing ``window`` of views, clicks, add-to-carts, units sold, revenue, average
    price paid and discount against the catalog price, and ``trend``: the views of the
    last ``slide`` relative to the window's average per ``slide`` (> 1: rising demand).
    """
    slides = interval_seconds(window) / interval_seconds(slide)
    recent = F.col("event_time") >= F.col("window.end") - F.expr(f"INTERVAL {slide}")
    return (
        watermarked(df.filter(F.col("product_id").isNotNull()), lateness)
        .withColumn("window", F.window("event_time", window, slide))
        .groupBy("window", "product_id")
        .agg(
            F.max("product_category").alias("category"),
            F.max("product_base_price").cast("decimal(12,2)").alias("base_price"),
            count_where(_is("page_view")).alias("views"),
            count_where(_is("page_view") & recent).alias("recent_views"),
            count_where(_is("click")).alias("clicks"),
            count_where(_is("add_to_cart")).alias("add_to_carts"),
            sum_where("quantity", _is("purchase")).cast("long").alias("units_sold"),
            _money(_revenue()).alias("revenue"),
            distinct_where("user_id", _is("page_view")).alias("unique_viewers"),
        )
        .select(
            *window_bounds(), "product_id", "category", "base_price", "views", "recent_views", "clicks",
            "add_to_carts", "units_sold", "revenue", "unique_viewers",
            F.when(F.col("units_sold") > 0, (F.col("revenue") / F.col("units_sold")).cast("decimal(12,2)"))
            .alias("avg_price_paid"),
            ratio(F.col("add_to_carts"), F.col("views")).alias("view_to_cart"),
            ratio(F.col("units_sold"), F.col("views")).alias("units_per_view"),
            ratio(F.col("recent_views") * F.lit(slides), F.col("views")).alias("trend"),
        )
        .withColumn("discount_pct", ratio(F.col("base_price") - F.col("avg_price_paid"), F.col("base_price")))
    )
