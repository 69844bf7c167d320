"""Gold aggregates on tiny hand-written silver rows (static DataFrames), with chispa."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.transforms.gold_clickstream import (concurrent_viewers, hourly_funnel, page_minute_metrics,
                                                   product_demand, sessions)
from kappalake.transforms.gold_telemetry import device_minute_stats, fleet_health, zone_occupancy
from kappalake.transforms.windows import interval_seconds

T0 = dt.datetime(2026, 11, 22, 8, 0)
CLICKS = ("event_time timestamp, event_type string, session_id string, user_id string, app string, device string, "
          "page string, referrer string, product_id string, price decimal(12,2), quantity int, buffer_ms int, "
          "product_category string, product_base_price decimal(12,2)")  # silver's money: exact
TELEMETRY = ("event_time timestamp, device_id string, device_kind string, vehicle_type string, speed_kmh double, "
             "odometer_km double, engine_temp_c double, cargo_temp_c double, fuel_level_pct double, parked boolean, "
             "road_condition string, lat double, lon double, zone_id string, zone_name string, zone_building string, "
             "zone_capacity int, badge_id string, direction string")


def at(seconds: float, base: dt.datetime = T0) -> dt.datetime:
    return base + dt.timedelta(seconds=seconds)


def click(s: float, kind: str, session: str = "s1", user: str = "u1", page: str = "/", product: str | None = None,
          price: float | None = None, qty: int | None = None, buffer_ms: int | None = None, app: str = "web",
          base: dt.datetime = T0) -> tuple:
    money = None if price is None else Decimal(str(price))
    return (at(s, base), kind, session, user, app, "desktop", page, None, product, money, qty, buffer_ms,
            "shoes" if product else None, Decimal("100.00") if product else None)


def vehicle(s: float, device: str = "truck-0001", vtype: str = "reefer_truck", speed: float = 50.0, odo: float = 100.0,
            engine: float = 90.0, cargo: float | None = 4.0, fuel: float = 60.0, parked: bool = False,
            road: str = "dry") -> tuple:
    return (at(s), device, "vehicle", vtype, float(speed), float(odo), float(engine), cargo, float(fuel), parked, road,
            52.0 + s / 1000, 13.0,
            None, None, None, None, None, None)


def badge(s: float, zone: str, person: str, direction: str = "in", capacity: int = 10) -> tuple:
    return (at(s), f"badge-{zone}-a", "badge_sensor", None, None, None, None, None, None, None, None, None, None,
            zone, f"Zone {zone}", "HQ", capacity, person, direction)


@pytest.fixture
def shop(spark):
    """One converting web session, one watching session, one late-night mobile session."""
    rows = [
        click(0, "page_view"),
        click(5, "page_view", page="/product/p1", product="p1"),
        click(10, "add_to_cart", page="/product/p1", product="p1", price=90.0, qty=2),
        click(20, "checkout", page="/checkout"),
        click(25, "purchase", page="/checkout", product="p1", price=90.0, qty=2),
        click(25.1, "purchase", page="/checkout", product="p2", price=19.99, qty=1),
        click(30, "video_play", session="s2", user="u2", page="/watch/c1"),
        click(50, "buffering", session="s2", user="u2", page="/watch/c1", buffer_ms=300),
        click(80, "video_stop", session="s2", user="u2", page="/watch/c1"),
        click(59.999, "page_view", session="s3", user="u1", page="/product/p1", product="p1", app="ios"),
    ]
    return spark.createDataFrame(rows, CLICKS)


def test_page_minute_metrics_count_per_page_product_and_minute(spark, shop):
    out = page_minute_metrics(shop).filter(F.col("page").isin("/checkout", "/product/p1"))
    schema = "window_start timestamp, window_end timestamp, page string, product_id string, events long, views long, " \
             "clicks long, add_to_carts long, purchases long, units long, revenue decimal(18,2), unique_users int"
    m0, m1 = at(0), at(60)
    expected = spark.createDataFrame([
        (m0, m1, "/product/p1", "p1", 3, 2, 0, 1, 0, 0, Decimal("0.00"), 1),  # 59.999 s is still minute 0
        (m0, m1, "/checkout", None, 1, 0, 0, 0, 0, 0, Decimal("0.00"), 1),
        (m0, m1, "/checkout", "p1", 1, 0, 0, 0, 1, 2, Decimal("180.00"), 1),
        (m0, m1, "/checkout", "p2", 1, 0, 0, 0, 1, 1, Decimal("19.99"), 1),
    ], schema)
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_window_boundaries_are_half_open_and_utc(spark):
    # 23:59:59.999 on Nov 22 and 00:00:00.000 on Nov 23 fall in different minutes, hours and days.
    midnight = dt.datetime(2026, 11, 23, 0, 0)
    df = spark.createDataFrame([click(-0.001, "page_view", base=midnight), click(0, "page_view", base=midnight)], CLICKS)
    starts = sorted(r["window_start"] for r in page_minute_metrics(df).collect())
    assert starts == [dt.datetime(2026, 11, 22, 23, 59), midnight]
    hours = sorted(r["window_start"] for r in hourly_funnel(df).collect())
    assert hours == [dt.datetime(2026, 11, 22, 23, 0), midnight]
    assert sorted(r["session_date"] for r in sessions(df.withColumn("session_id", F.lit("x"))).collect()) == \
        [dt.date(2026, 11, 22)]  # one session across midnight, dated by its start


def test_sessions_split_on_the_gap_and_report_conversion(spark, shop):
    later = spark.createDataFrame([click(25.1 + 301, "page_view", page="/help")], CLICKS)  # > 5 min pause: new session
    out = {(r["session_id"], r["started_at"]): r for r in sessions(shop.unionByName(later), gap="5 minutes").collect()}
    assert len(out) == 4
    s1 = out[("s1", at(0))]
    assert (s1["events"], s1["page_views"], s1["distinct_pages"], s1["products_viewed"]) == (6, 2, 3, 1)
    assert (s1["add_to_carts"], s1["purchases"], s1["revenue"], s1["converted"]) == (1, 2, Decimal("199.99"), True)
    assert (s1["landing_page"], s1["exit_page"], s1["duration_s"]) == ("/", "/checkout", 25.1)
    again = out[("s1", at(326.1))]
    assert (again["events"], again["converted"], again["duration_s"]) == (1, False, 0.0)
    s2 = out[("s2", at(30))]
    assert (s2["videos_played"], s2["duration_s"], s2["converted"]) == (1, 50.0, False)


def test_hourly_funnel_counts_sessions_per_step(spark, shop):
    out = {r["app"]: r for r in hourly_funnel(shop).collect()}
    web = out["web"]
    assert (web["sessions"], web["viewed_product"], web["added_to_cart"], web["checked_out"], web["purchased"]) == \
        (2, 1, 1, 1, 1)
    assert (web["view_to_cart"], web["cart_to_purchase"], web["conversion_rate"]) == (1.0, 1.0, 0.5)
    assert web["revenue"] == Decimal("199.99") and web["window_start"] == T0
    ios = out["ios"]
    assert (ios["sessions"], ios["viewed_product"], ios["added_to_cart"], ios["view_to_cart"], ios["conversion_rate"]) \
        == (1, 1, 0, 0.0, 0.0)


def test_concurrent_viewers_follow_play_and_stop(spark, shop):
    more = spark.createDataFrame([click(35, "video_play", session="s4", user="u4", page="/watch/c2"),
                                  click(60, "video_stop", session="s4", user="u4", page="/watch/c2")], CLICKS)
    out = {r["second"]: r for r in concurrent_viewers(shop.unionByName(more), horizon="40 seconds").collect()}
    viewers = {s: out[at(s)]["viewers"] if at(s) in out else 0 for s in range(25, 130)}
    # s2 plays at 30 s, buffers at 50 s, stops at 80 s; s4 plays 35-60 s. A second counts the
    # events before its end: at second 31 the play at 30.0 s is in.
    assert viewers[30] == 0 and viewers[31] == 1 and viewers[36] == 2 and viewers[60] == 2
    assert viewers[61] == 1 and viewers[80] == 1 and viewers[81] == 0 and viewers[125] == 0
    assert out[at(51)]["stalls"] == 1 and out[at(51)]["stall_ms"] == 300 and out[at(51)]["starts"] == 2


def test_a_viewer_that_stops_and_plays_again_counts_once(spark):
    df = spark.createDataFrame([click(0, "video_play"), click(10, "video_stop"), click(12, "video_play")], CLICKS)
    out = {r["second"]: r["viewers"] for r in concurrent_viewers(df).collect()}
    assert out[at(11)] == 0 and out[at(13)] == 1 and out[at(30)] == 1


def test_product_demand_features_and_trend(spark):
    rows = [click(s, "page_view", page="/product/p1", product="p1") for s in (-1800, -600, -300, 60, 120, 180)]
    rows += [click(200, "purchase", page="/checkout", product="p1", price=80.0, qty=3)]
    out = {r["window_end"]: r for r in product_demand(spark.createDataFrame(rows, CLICKS)).collect()}
    row = out[at(15 * 60)]  # trailing hour 07:15-08:15, the last 15 minutes are 08:00-08:15
    assert (row["views"], row["recent_views"], row["units_sold"], row["revenue"]) == (6, 3, 3, Decimal("240.00"))
    assert row["trend"] == 2.0  # 3 views in the last quarter vs 6/4 per quarter over the hour
    assert (row["avg_price_paid"], row["discount_pct"], row["base_price"]) == (Decimal("80.00"), 0.2, Decimal("100.00"))
    assert row["units_per_view"] == 0.5 and row["category"] == "shoes"
    assert len(out) == 6  # hour windows ending 07:45 ... 09:00 each hold some of the rows
    assert interval_seconds("15 minutes") == 900 and interval_seconds("1 hour") == 3600


def test_device_minute_stats(spark):
    rows = [vehicle(0, engine=90, cargo=4.0, speed=40, odo=100.0), vehicle(20, engine=95, cargo=5.0, speed=60, odo=100.3),
            vehicle(40, engine=88, cargo=3.0, speed=0, odo=100.5, parked=True, fuel=55.0),
            vehicle(61, engine=70, odo=101.0), badge(10, "z01", "b1")]
    out = {r["window_start"]: r for r in device_minute_stats(spark.createDataFrame(rows, TELEMETRY)).collect()}
    assert set(out) == {at(0), at(60)}  # the badge reading is not a vehicle
    m = out[at(0)]
    assert (m["readings"], m["engine_temp_min_c"], m["engine_temp_avg_c"], m["engine_temp_max_c"]) == (3, 88, 91.0, 95)
    assert (m["cargo_temp_min_c"], m["cargo_temp_avg_c"], m["cargo_temp_max_c"]) == (3.0, 4.0, 5.0)
    assert (m["speed_avg_kmh"], m["speed_max_kmh"], m["distance_km"]) == (33.33, 60, 0.5)
    assert (m["fuel_min_pct"], m["parked_readings"], m["last_lat"]) == (55.0, 1, 52.04)


def test_taxis_have_no_cargo_temperature(spark):
    df = spark.createDataFrame([vehicle(0, device="taxi-0001", vtype="taxi", cargo=None)], TELEMETRY)
    row = device_minute_stats(df).first()
    assert row["cargo_temp_avg_c"] is None and row["engine_temp_avg_c"] == 90.0


def test_zone_occupancy_per_quarter_hour(spark):
    rows = [badge(0, "z01", "b1"), badge(60, "z01", "b2"), badge(120, "z01", "b1", "out"), badge(130, "z01", "b1"),
            badge(899.999, "z02", "b3"), badge(900, "z02", "b4"), vehicle(5)]
    out = {(r["window_start"], r["zone_id"]): r for r in zone_occupancy(spark.createDataFrame(rows, TELEMETRY)).collect()}
    assert set(out) == {(at(0), "z01"), (at(0), "z02"), (at(900), "z02")}
    z1 = out[(at(0), "z01")]
    assert (z1["entries"], z1["exits"], z1["net_flow"], z1["visitors"], z1["people"]) == (3, 1, 2, 2, 2)
    assert (z1["utilisation"], z1["zone_name"], z1["capacity"]) == (0.2, "Zone z01", 10)
    assert out[(at(0), "z02")]["visitors"] == 1 and out[(at(900), "z02")]["visitors"] == 1


def test_fleet_health(spark):
    rows = [vehicle(0, device="truck-1", engine=104, cargo=9.0), vehicle(10, device="truck-1", engine=99, cargo=6.0),
            vehicle(0, device="truck-2", parked=True, speed=0, fuel=10.0, road="icy"),
            vehicle(5, device="truck-3", vtype="fuel_truck", cargo=15.0, speed=80),
            vehicle(7, device="taxi-1", vtype="taxi", cargo=None, road="snow", speed=30)]
    out = {r["vehicle_type"]: r for r in fleet_health(spark.createDataFrame(rows, TELEMETRY)).collect()}
    reefer = out["reefer_truck"]
    assert (reefer["vehicles"], reefer["moving"], reefer["parked"], reefer["engine_hot"]) == (2, 1, 1, 1)
    assert (reefer["cargo_out_of_range"], reefer["low_fuel"], reefer["readings"]) == (1, 1, 3)
    assert (reefer["speed_avg_kmh"], reefer["engine_temp_max_c"], reefer["bad_road_share"]) == (50.0, 104, 0.3333)
    assert out["fuel_truck"]["cargo_out_of_range"] == 0  # only refrigerated cargo has a band
    assert out["taxi"]["bad_road_share"] == 1.0


def test_nulls_and_unknown_products_do_not_break_aggregates(spark):
    df = spark.createDataFrame([click(0, "page_view", page="/product/p999", product="p999"),
                                click(1, "purchase", page="/checkout", product="p999", price=None, qty=None)], CLICKS)
    df = df.withColumn("product_category", F.lit(None).cast("string")).withColumn("product_base_price", F.lit(None).cast("decimal(12,2)"))
    row = product_demand(df).filter(F.col("window_end") == at(900)).first()
    assert (row["views"], row["units_sold"], row["revenue"], row["category"], row["discount_pct"]) == (1, 0, Decimal("0.00"), None, None)
