"""Silver transforms on tiny hand-written DataFrames (static), with chispa."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.transforms.dedup import CONFLICT, dedup, settle
from kappalake.transforms.enrich import enrich_clickstream, enrich_telemetry
from kappalake.transforms.normalise import normalise
from kappalake.transforms.parse import ERRORS, RESCUED, parse_events
from kappalake.transforms.privacy import coarsen, pseudonymise

T0 = dt.datetime(2026, 11, 22, 8, 0)
CLICK = {
    "schema_version": 1, "event_id": "9b9f042e-4b7b-4a62-b262-c1b2164fc09e", "event_type": "add_to_cart",
    "user_id": "u000042", "session_id": "s-1", "device": "mobile", "app": "ios", "app_version": "5.12.0",
    "browser": None, "page": "/product/p0007", "referrer": None, "product_id": "p0007", "price": 59.9, "quantity": 2,
    "search_query": None, "content_id": None, "buffer_ms": None, "error_code": None, "ip": "81.2.3.4",
    "geo": {"country": "GB", "city": "London", "lat": 51.50731, "lon": -0.12776},
    "event_time": "2026-11-22T08:00:00.123Z", "sent_at": "2026-11-22T08:00:00.456Z",
}
BADGE = {"schema_version": 1, "event_id": "0b9f042e-4b7b-4a62-b262-c1b2164fc09e", "device_id": "badge-z03-a",
         "device_kind": "badge_sensor", "event_time": "2026-11-22T23:59:59.999Z", "sent_at": "2026-11-23T00:00:00.100Z",
         "zone_id": "z03", "badge_id": "b00007", "direction": "in"}


def bronze(spark, payloads: list, topic: str = "clickstream"):
    """Bronze-shaped rows from payloads (dicts become compact JSON, bytes stay as they are)."""
    rows = []
    for i, p in enumerate(payloads):
        value = p if p is None or isinstance(p, bytes) else json.dumps(p, separators=(",", ":")).encode()
        rows.append((b"k", value, topic, 0, i, T0 + dt.timedelta(seconds=i), None))
    schema = "key binary, value binary, topic string, partition int, offset long, kafka_timestamp timestamp, " \
             "headers array<struct<key:string,value:binary>>"
    return spark.createDataFrame(rows, schema)


def errors_of(spark, payloads, topic="clickstream"):
    out = parse_events(bronze(spark, payloads, topic), topic).orderBy("offset")
    return [r[ERRORS] for r in out.select(ERRORS).collect()]


def test_a_valid_event_parses_to_typed_columns(spark):
    row = parse_events(bronze(spark, [CLICK]), "clickstream").first()
    assert row[ERRORS] == [] and row[RESCUED] is None
    assert row["event_time"] == dt.datetime(2026, 11, 22, 8, 0, 0, 123000)
    assert row["price"] == Decimal("59.90") and row["quantity"] == 2 and row["schema_version"] == 1
    assert row["geo"]["city"] == "London" and row["geo"]["lat"] == 51.50731
    assert (row["topic"], row["partition"], row["offset"]) == ("clickstream", 0, 0)


def test_each_problem_gets_its_own_error_code(spark):
    drop = lambda d, k: {x: y for x, y in d.items() if x != k}  # noqa: E731
    cases = [
        (b'{"event_id": "x", ', ["malformed_json"]),
        (json.dumps(CLICK).replace("London", "L\u00f6ndon").encode("latin-1"), ["not_utf8"]),
        (b"[1, 2, 3]", ["not_an_object"]),
        (drop(CLICK, "user_id"), ["missing:user_id"]),
        ({**CLICK, "session_id": None}, ["missing:session_id"]),
        ({**CLICK, "price": "59.9"}, ["wrong_type:price"]),
        ({**CLICK, "quantity": 1.5}, ["wrong_type:quantity"]),
        ({**CLICK, "event_id": 12345}, ["wrong_type:event_id"]),
        ({**CLICK, "geo": {**CLICK["geo"], "lat": "north"}}, ["wrong_type:geo.lat"]),
        ({**CLICK, "geo": "London"}, ["wrong_type:geo"]),
        ({**CLICK, "event_type": "teleport"}, ["enum:event_type"]),
        ({**CLICK, "quantity": 0}, ["range:quantity"]),
        ({**CLICK, "event_time": "2026-11-22 08:00:00"}, ["pattern:event_time"]),
        ({**CLICK, "event_time": 1795334400000}, ["wrong_type:event_time"]),
        ({**CLICK, "schema_version": 2}, ["version:2"]),
    ]
    got = errors_of(spark, [p for p, _ in cases])
    assert [sorted(e) for e in got] == [sorted(e) for _, e in cases]


def test_hostile_payload_edges_get_precise_codes(spark):
    one = json.dumps(CLICK).encode()
    cases = [
        (one + b" garbage", ["malformed_json"]),  # Spark's parsers alone stop after the first value
        (one + b"\n" + one, ["malformed_json"]),  # two events in one record: neither silently lost
        (None, ["tombstone"]),
        (b'{"event_id": "a", "event_id": "b"}', ["malformed_json"]),  # duplicate keys
        (json.dumps({**CLICK, "price": float("nan")}).encode(), ["malformed_json"]),  # NaN is not JSON
        ({**CLICK, "quantity": 3_000_000_000}, ["range:quantity"]),  # no silent null for an int overflow
        ({**CLICK, "user_id": "u000001\n"}, ["pattern:user_id"]),  # Java's $ would accept the newline
        ({**CLICK, "session_id": "   "}, ["missing:session_id"]),  # blank required text
        ({**CLICK, "price": 19.999}, ["precision:price"]),  # money is exact: never rounded to 20.00
        ({**CLICK, "price": 1e13}, ["range:price"]),  # more than decimal(12,2) holds
        ({**CLICK, "price": 1.999e1}, []),  # exponent notation, exactly 19.99
    ]
    got = errors_of(spark, [p for p, _ in cases])
    assert [sorted(e) for e in got] == [sorted(e) for _, e in cases]


def test_unknown_fields_inside_objects_are_rescued(spark):
    row = parse_events(bronze(spark, [{**CLICK, "geo": {**CLICK["geo"], "accuracy_m": 25}}]), "clickstream").first()
    assert row[ERRORS] == [] and json.loads(row[RESCUED]) == {"geo": {"accuracy_m": 25}}


def test_oversized_payloads_are_flagged(spark):
    big = {**CLICK, "note": "x" * 2000}
    out = parse_events(bronze(spark, [big]), "clickstream", max_payload_bytes=1000).first()
    assert "oversized" in out[ERRORS]


def test_unknown_fields_are_rescued_not_lost(spark):
    row = parse_events(bronze(spark, [{**CLICK, "ab_variant": "B", "hints": {"dpr": 2}}]), "clickstream").first()
    assert row[ERRORS] == []
    assert json.loads(row[RESCUED]) == {"ab_variant": "B", "hints": {"dpr": 2}}


def test_conditional_fields_follow_the_device_kind(spark):
    vehicle = {**BADGE, "device_kind": "vehicle", "device_id": "truck-0001"}
    got = errors_of(spark, [BADGE, {**BADGE, "direction": None}, vehicle], "telemetry")
    assert got[0] == [] and got[1] == ["missing:direction"]
    assert "missing:engine_temp_c" in got[2] and "missing:vehicle_type" in got[2]


def test_text_is_trimmed_and_codes_canonicalised_before_checks(spark):
    messy = {**CLICK, "event_type": " Add_To_Cart ", "page": "  /product/p0007 ", "device": "MOBILE",
             "user_id": " u000042 "}
    row = parse_events(bronze(spark, [messy]), "clickstream").first()
    assert row[ERRORS] == []
    assert (row["event_type"], row["page"], row["device"], row["user_id"]) == ("add_to_cart", "/product/p0007", "mobile", "u000042")
    assert errors_of(spark, [{**CLICK, "geo": {**CLICK["geo"], "country": "gb"}}]) == [["pattern:geo.country"]]


def test_normalise_flattens_blanks_to_null_and_dates_in_utc(spark):
    messy = {**CLICK, "search_query": "   "}
    out = normalise(parse_events(bronze(spark, [messy]), "clickstream"))
    row = out.first()
    assert row["geo_country"] == "GB" and row["geo_city"] == "London"
    assert row["search_query"] is None  # blank text is no text
    assert "geo" not in out.columns and {"geo_lat", "geo_lon", "geo_city"} <= set(out.columns)
    assert row["event_date"] == dt.date(2026, 11, 22) and row["event_hour"] == dt.datetime(2026, 11, 22, 8)
    assert row["lateness_ms"] == 333
    assert out.columns[-1] == ERRORS
    late_night = normalise(parse_events(bronze(spark, [BADGE], "telemetry"), "telemetry")).first()
    assert late_night["event_date"] == dt.date(2026, 11, 22)  # 23:59:59.999Z is still the 22nd in UTC


def test_dedup_keeps_one_of_each_event_id_and_never_merges_broken_rows(spark):
    other = {**CLICK, "event_id": "1b9f042e-4b7b-4a62-b262-c1b2164fc09e"}
    late = {**CLICK, "event_id": "2b9f042e-4b7b-4a62-b262-c1b2164fc09e", "event_time": "2026-11-22T07:30:00.000Z"}
    rows = [CLICK, other, CLICK, late, b"{broken", b"{broken", drop_id := {k: v for k, v in CLICK.items() if k != "event_id"}, drop_id]
    out = dedup(parse_events(bronze(spark, rows), "clickstream"))
    valid = out.filter(F.size(ERRORS) == 0)
    assert sorted(r["event_id"] for r in valid.collect()) == sorted([CLICK["event_id"], other["event_id"], late["event_id"]])
    assert out.filter(F.size(ERRORS) > 0).count() == 4  # each broken row kept on its own


# Arrival order (offset = seconds after T0): an event, its conflicting resend in the same batch, an
# identical copy and a second conflicting version later, another event and its identical copy.
OTHER = {**CLICK, "event_id": "1b9f042e-4b7b-4a62-b262-c1b2164fc09e"}
RESENDS = [[CLICK, {**CLICK, "price": 60.0}, OTHER], [CLICK, {**CLICK, "quantity": 3}, OTHER, b"{broken"]]
VERDICTS = {0: "event", 1: CONFLICT, 2: "event", 4: CONFLICT, 6: "broken"}  # offsets 3 and 5: identical copies


def _verdicts(rows) -> dict[int, str]:
    return {r["offset"]: ("event" if not r[ERRORS] else CONFLICT if r[ERRORS] == [CONFLICT] else "broken") for r in rows}


def test_dedup_drops_identical_resends_and_flags_conflicting_ones(spark):
    out = dedup(parse_events(bronze(spark, RESENDS[0] + RESENDS[1]), "clickstream"))
    assert _verdicts(out.collect()) == VERDICTS
    assert out.columns == parse_events(bronze(spark, [CLICK]), "clickstream").columns


def test_dedup_on_a_stream_settles_each_micro_batch_as_the_batch_does(spark, tmp_path):
    """Two micro-batches: the conflict within the first and the one across batches are both
    flagged, the identical copy is dropped, and the first arrival is the event."""
    path, seen = str(tmp_path / "bronze"), []
    offset = 0
    for batch in RESENDS:
        rows = bronze(spark, [CLICK] * offset + batch).filter(F.col("offset") >= offset)
        rows.coalesce(1).write.format("delta").mode("append").save(path)
        offset += len(batch)
    stream = parse_events(spark.readStream.format("delta").option("maxFilesPerTrigger", 1).load(path), "clickstream")
    query = (dedup(stream).writeStream.trigger(availableNow=True)
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .foreachBatch(lambda df, _: seen.append(settle(df).collect())).start())
    assert query.awaitTermination(120)
    seen = [rows for rows in seen if rows]  # and a batch without data, for the watermark
    assert len(seen) == 2 and _verdicts(seen[0] + seen[1]) == VERDICTS
    assert settle(spark.createDataFrame([], dedup(stream).schema)).columns == stream.columns


def test_pseudonyms_are_hmac_sha256_and_stable(spark):
    df = spark.createDataFrame([("u000042", "81.2.3.4"), ("u000042", None)], "user_id string, ip string")
    out = pseudonymise(df, ["user_id", "ip"], secret="s3cret").collect()
    expect = hmac.new(b"s3cret", b"u000042", hashlib.sha256).hexdigest()
    assert out[0]["user_id"] == out[1]["user_id"] == expect
    assert out[0]["ip"] == hmac.new(b"s3cret", b"81.2.3.4", hashlib.sha256).hexdigest() and out[1]["ip"] is None
    long_key = "k" * 100  # keys longer than a block are hashed first, as RFC 2104 says
    got = pseudonymise(df.limit(1), ["user_id"], secret=long_key).first()["user_id"]
    assert got == hmac.new(long_key.encode(), b"u000042", hashlib.sha256).hexdigest()
    assert pseudonymise(df, ["user_id"], secret="other").first()["user_id"] != expect
    with pytest.raises(ValueError, match="no column"):
        pseudonymise(df, ["email"], secret="x")


def test_coarsen_rounds_coordinates(spark):
    df = spark.createDataFrame([(51.50731, -0.12776)], "geo_lat double, geo_lon double")
    expected = spark.createDataFrame([(51.5, -0.1)], "geo_lat double, geo_lon double")
    assert_df_equality(coarsen(df, ["geo_lat", "geo_lon"], 1), expected)


def test_enrichment_joins_products_and_offers_plans_by_city(spark):
    products = spark.createDataFrame(
        [("p0007", "Velo Sneakers 0007", "sneakers", "Velo", Decimal("80.00"), 3)],
        "product_id string, name string, category string, brand string, base_price decimal(12,2), popularity_rank int")
    plans = spark.createDataFrame(
        [("GB-LON-pro", "GB", "London", "pro", 1000, 200, Decimal("60.00"), "EUR"),
         ("GB-LON-basic", "GB", "London", "basic", 50, 10, Decimal("20.00"), "EUR")],
        "plan_id string, country string, city string, plan_name string, download_mbps int, upload_mbps int, "
        "monthly_price decimal(12,2), currency string")
    events = spark.createDataFrame(
        [("e1", "p0007", "GB", "London"), ("e2", "p9999", "GB", "London"), ("e3", None, "FR", "Paris")],
        "event_id string, product_id string, geo_country string, geo_city string")
    out = {r["event_id"]: r for r in enrich_clickstream(events, products, plans).collect()}
    assert out["e1"]["product_category"] == "sneakers" and out["e1"]["product_base_price"] == Decimal("80.00")
    assert out["e2"]["product_category"] is None  # unknown product: kept, not enriched
    assert [p["plan_id"] for p in out["e1"]["offered_plans"]] == ["GB-LON-basic", "GB-LON-pro"]  # cheapest first
    assert out["e3"]["offered_plans"] is None and len(out) == 3


def test_enrichment_adds_zone_details_to_badge_events(spark):
    zones = spark.createDataFrame([("z03", "Cafeteria", "B", 250, 47.0, 8.0)],
                                  "zone_id string, name string, building string, capacity int, lat double, lon double")
    events = spark.createDataFrame([("e1", "z03"), ("e2", None)], "event_id string, zone_id string")
    out = {r["event_id"]: r for r in enrich_telemetry(events, zones).collect()}
    assert out["e1"]["zone_name"] == "Cafeteria" and out["e1"]["zone_capacity"] == 250
    assert out["e2"]["zone_name"] is None
