"""Gold telemetry aggregates over silver.telemetry (streaming or static alike)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from kappalake.transforms.windows import count_where, distinct_where, ratio, watermarked, window_bounds


def _vehicles(df: DataFrame) -> DataFrame:
    return df.filter(F.col("device_kind") == "vehicle")


def _r(col: Column, digits: int = 2) -> Column:
    return F.round(col, digits)


def _mean(col: Column, digits: int = 2) -> Column:
    """The average of ``col`` rounded to ``digits``, summed as decimals: a sum of doubles depends
    on the order rows are added in, which differs between a stream's micro-batches (and a
    cluster's partitions) and one batch, and can tip the rounded value (17.475 -> 17.47/17.48)."""
    return F.round(F.avg(col.cast("decimal(20,6)")), digits).cast("double")


def device_minute_stats(df: DataFrame, window: str = "1 minute", lateness: str = "1 hour") -> DataFrame:
    """Per vehicle per ``window``: readings; min/avg/max engine and cargo temperature;
    average and top speed; distance (odometer advance within the window); lowest fuel
    level; readings parked; last position."""
    t = F.col("event_time")
    return (
        watermarked(_vehicles(df), lateness)
        .groupBy(F.window("event_time", window).alias("window"), "device_id")
        .agg(
            F.max("vehicle_type").alias("vehicle_type"),
            F.count(F.lit(1)).alias("readings"),
            F.min("engine_temp_c").alias("engine_temp_min_c"),
            _mean(F.col("engine_temp_c")).alias("engine_temp_avg_c"),
            F.max("engine_temp_c").alias("engine_temp_max_c"),
            F.min("cargo_temp_c").alias("cargo_temp_min_c"),
            _mean(F.col("cargo_temp_c")).alias("cargo_temp_avg_c"),
            F.max("cargo_temp_c").alias("cargo_temp_max_c"),
            _mean(F.col("speed_kmh")).alias("speed_avg_kmh"),
            F.max("speed_kmh").alias("speed_max_kmh"),
            _r(F.max("odometer_km") - F.min("odometer_km"), 3).alias("distance_km"),
            F.min("fuel_level_pct").alias("fuel_min_pct"),
            count_where(F.col("parked")).alias("parked_readings"),
            F.max_by("lat", t).alias("last_lat"),
            F.max_by("lon", t).alias("last_lon"),
        )
        .select(*window_bounds(), "device_id", "vehicle_type", "readings", "engine_temp_min_c", "engine_temp_avg_c",
                "engine_temp_max_c", "cargo_temp_min_c", "cargo_temp_avg_c", "cargo_temp_max_c", "speed_avg_kmh",
                "speed_max_kmh", "distance_km", "fuel_min_pct", "parked_readings", "last_lat", "last_lon")
    )


def zone_occupancy(df: DataFrame, window: str = "15 minutes", lateness: str = "1 hour") -> DataFrame:
    """Per campus zone per ``window`` (the security team's 15 minutes): entries, exits,
    net flow, distinct people who entered (``visitors``) or passed a gate (``people``),
    and ``utilisation`` = visitors / zone capacity. The sink ranks zones per window."""
    badges = df.filter(F.col("device_kind") == "badge_sensor")
    entering = F.col("direction") == "in"
    return (
        watermarked(badges, lateness)
        .groupBy(F.window("event_time", window).alias("window"), "zone_id")
        .agg(
            F.max("zone_name").alias("zone_name"),
            F.max("zone_building").alias("building"),
            F.max("zone_capacity").alias("capacity"),
            count_where(entering).alias("entries"),
            count_where(F.col("direction") == "out").alias("exits"),
            distinct_where("badge_id", entering).alias("visitors"),
            distinct_where("badge_id").alias("people"),
        )
        .select(*window_bounds(), "zone_id", "zone_name", "building", "capacity", "entries", "exits",
                (F.col("entries") - F.col("exits")).alias("net_flow"), "visitors", "people",
                ratio(F.col("visitors"), F.col("capacity")).alias("utilisation"))
    )


def fleet_health(df: DataFrame, window: str = "1 minute", lateness: str = "1 hour", engine_max_c: float = 100.0,
                 cargo_min_c: float = 1.0, cargo_max_c: float = 7.0, low_fuel_pct: float = 15.0) -> DataFrame:
    """Fleet summary per ``window`` and vehicle type: vehicles reporting, moving and parked;
    vehicles with engine above ``engine_max_c``, refrigerated cargo outside
    ``[cargo_min_c, cargo_max_c]`` or fuel below ``low_fuel_pct``; speed; share of readings
    on icy or snowy roads."""
    v = "device_id"
    reefer_out = (F.col("vehicle_type") == "reefer_truck") & ~F.col("cargo_temp_c").between(cargo_min_c, cargo_max_c)
    return (
        watermarked(_vehicles(df), lateness)
        .groupBy(F.window("event_time", window).alias("window"), "vehicle_type")
        .agg(
            distinct_where(v).alias("vehicles"),
            distinct_where(v, ~F.col("parked") & (F.col("speed_kmh") > 0)).alias("moving"),
            distinct_where(v, F.col("parked")).alias("parked"),
            distinct_where(v, F.col("engine_temp_c") > engine_max_c).alias("engine_hot"),
            distinct_where(v, reefer_out).alias("cargo_out_of_range"),
            distinct_where(v, F.col("fuel_level_pct") < low_fuel_pct).alias("low_fuel"),
            _mean(F.when(~F.col("parked"), F.col("speed_kmh"))).alias("speed_avg_kmh"),
            F.max("engine_temp_c").alias("engine_temp_max_c"),
            F.count(F.lit(1)).alias("readings"),
            count_where(F.col("road_condition").isin("icy", "snow")).alias("_bad_road"),
        )
        .select(*window_bounds(), "vehicle_type", "vehicles", "moving", "parked", "engine_hot", "cargo_out_of_range",
                "low_fuel", "speed_avg_kmh", "engine_temp_max_c", "readings",
                ratio(F.col("_bad_road"), F.col("readings")).alias("bad_road_share"))
    )
