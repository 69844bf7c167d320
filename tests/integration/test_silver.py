"""Kafka -> bronze -> silver + quarantine -> gold against the real broker, with every fault kind."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.config import TriggerConf
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.ops.consistency import check_silver
from kappalake.pipelines.compose import build_checked_batch
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from kappalake.quality.quarantine import quarantine_rows, valid_rows
from kappalake.transforms.dedup import CONFLICT
from tests.conftest import make_config
from tests.lake_checks import assert_exactly_once, bronze, event_rows, header, table

AVAILABLE_NOW = TriggerConf(available_now=True)
PIPELINES = ["bronze_clickstream", "bronze_telemetry", "silver_clickstream", "silver_telemetry",
             "gold_page_minute", "gold_device_minute", "gold_zone_occupancy"]
QUARANTINED = {"malformed_json", "missing_field", "wrong_type", "non_utf8", "oversized",  # the contract
               "future_time", "bad_timestamp", "implausible_value",  # the expectations (conf/expectations)
               "conflicting_resend"}  # dedup: an event_id seen before with other content
PLAUSIBLE = {"clickstream": "price_plausible", "telemetry": "speed_plausible"}
SECRET = "kappalake-local-development-only"


@pytest.fixture(scope="module")
def lake(spark, broker_conf, tmp_path_factory):
    """Both topics produced with every fault kind at 1%, run through bronze, silver and some gold."""
    cfg = make_config(broker_conf, tmp_path_factory.mktemp("silver"), **{
        "pipelines.bronze_clickstream.source.max_offsets_per_trigger": 1500,
        "pipelines.silver_clickstream.source.max_files_per_trigger": 1,
        "producer.users": 400,
    })
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    write_reference_tables(spark, cfg)
    faults = FaultRates.uniform(0.01)
    sent = {"clickstream": produce(cfg, ProduceSpec("clickstream", count=4000, seed=21, faults=faults)),
            "telemetry": produce(cfg, ProduceSpec("telemetry", count=3000, seed=22, faults=faults, span=1200,
                                                 devices=20, people=400))}
    assert all(s.acked == s.sent and not s.errors for s in sent.values())
    reports = {r.pipeline: r for r in run_pipelines(spark, cfg, PIPELINES, trigger=AVAILABLE_NOW, timeout=900)}
    assert reports["silver_clickstream"].batches >= 3  # several micro-batches: dedup state crosses batches
    return cfg, sent


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_every_bronze_row_is_in_silver_quarantine_or_dropped_as_duplicate(spark, lake, topic):
    cfg, sent = lake
    assert_exactly_once(spark, cfg, topic, sent[topic].acked)
    b = bronze(spark, cfg, topic).select("topic", "partition", "offset", header("kl-fault").alias("fault"),
                                         header("kl-field").alias("field"))
    silver = table(spark, cfg, f"silver.{topic}")
    quarantine = table(spark, cfg, f"quarantine.{topic}")
    coords = ["topic", "partition", "offset"]
    landed = silver.select(*coords, F.lit("silver").alias("where")).unionByName(
        quarantine.select(*coords, F.lit("quarantine").alias("where")))
    joined = b.join(landed, coords, "left")
    where = {(r["fault"], r["where"]): r["count"] for r in joined.groupBy("fault", "where").count().collect()}
    # Broken payloads all in quarantine, none in silver; one copy of each resent event; the rest in silver.
    for kind in QUARANTINED:
        assert where.get((kind, "quarantine"), 0) == sent[topic].faults[kind] > 0
        assert (kind, "silver") not in where and (kind, None) not in where
    for kind in ("late", "out_of_order", "extra_field"):
        assert where.get((kind, "silver"), 0) == sent[topic].faults[kind] > 0
    # Of an event and its resend exactly one copy is in silver (usually the first; see lake_checks).
    nowhere = joined.filter(F.col("where").isNull())
    assert nowhere.count() == sent[topic].faults["duplicate"] > 0
    assert where.get(("duplicate", None), 0) + where.get((None, None), 0) == sent[topic].faults["duplicate"]
    assert ("duplicate", "quarantine") not in where and (None, "quarantine") not in where
    copies = bronze(spark, cfg, topic).join(nowhere, coords, "left_semi").select(
        F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id"))
    assert copies.join(silver, "event_id", "left_anti").count() == 0
    assert silver.count() == silver.select("event_id").distinct().count()
    assert quarantine.select(*coords).distinct().count() == quarantine.count()


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_quarantine_rows_say_why_and_keep_the_raw_payload(spark, lake, topic):
    cfg, _ = lake
    q = table(spark, cfg, f"quarantine.{topic}").join(
        bronze(spark, cfg, topic).select("topic", "partition", "offset", F.col("value").alias("raw"),
                                         header("kl-fault").alias("fault"), header("kl-field").alias("field")),
        ["topic", "partition", "offset"])
    for r in q.collect():
        assert bytes(r["payload"]) == bytes(r["raw"]) and r["pipeline"] == f"silver_{topic}"
        assert r["reason"] == r["errors"][0]
        impossible_date = r["fault"] == "bad_timestamp" and not r["payload_text"].split('"event_time":"')[1][:4] in ("0001", "1970")
        expected = {"malformed_json": "malformed_json", "non_utf8": "not_utf8", "oversized": "oversized",
                    "missing_field": f"missing:{r['field']}", "wrong_type": f"wrong_type:{r['field']}",
                    "future_time": "event_time_not_in_future", "implausible_value": PLAUSIBLE[topic],
                    "bad_timestamp": "format:event_time" if impossible_date else "event_time_plausible",
                    "conflicting_resend": "conflicting_resend"}[r["fault"]]
        assert expected in r["errors"], (r["fault"], r["field"], r["errors"])
        stage = {"malformed_json": "parse", "non_utf8": "parse", "oversized": "parse", "conflicting_resend": "dedup"}.get(
            r["fault"], "contract" if ":" in expected else "expectations")
        assert r["stage"] == stage and r["error_text"], (r["fault"], r["stage"], r["error_text"])


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_quality_metrics_account_for_every_row_per_batch(spark, lake, topic):
    cfg, sent = lake
    m = table(spark, cfg, "ops.quality_metrics").filter(F.col("pipeline") == f"silver_{topic}")
    per_batch = m.collect()
    assert len(per_batch) >= (2 if topic == "clickstream" else 1)  # clickstream runs one bronze file per batch
    assert len({r["batch_id"] for r in per_batch}) == len(per_batch)
    assert all(r["rows_in"] == r["passed"] + r["warned"] + r["dropped"] + r["quarantined"] for r in per_batch)
    silver, quarantine = table(spark, cfg, f"silver.{topic}"), table(spark, cfg, f"quarantine.{topic}")
    assert sum(r["rows_in"] for r in per_batch) == sent[topic].acked - sent[topic].faults["duplicate"]
    assert sum(r["passed"] + r["warned"] for r in per_batch) == silver.count()
    assert sum(r["quarantined"] for r in per_batch) == quarantine.count()
    # Per-rule counts: the quarantined ones match the quarantine table's error lists.
    rules = {}
    for r in per_batch:
        for k, v in r["rule_failures"].items():
            rules[k] = rules.get(k, 0) + v
    in_quarantine = {r["rule"]: r["count"] for r in quarantine.select(F.explode("errors").alias("rule")).groupBy("rule").count().collect()}
    for rule, n in in_quarantine.items():
        assert rules[rule] == n, rule
    assert rules[PLAUSIBLE[topic]] == sent[topic].faults["implausible_value"]


def test_silver_clickstream_is_pseudonymised_coarsened_and_enriched(spark, lake):
    cfg, _ = lake
    s = table(spark, cfg, "silver.clickstream")
    assert s.filter(F.col("user_id").rlike(r"^u\d{6}$") | F.col("ip").rlike(r"^\d+\.")).count() == 0
    assert s.filter(F.length("user_id") != 64).count() == 0
    assert s.filter((F.col("geo_lat") != F.round("geo_lat", 1)) | (F.col("geo_lon") != F.round("geo_lon", 1))).count() == 0
    # The pseudonym is HMAC-SHA256 of the original id under the configured secret.
    b = bronze(spark, cfg, "clickstream").select("partition", "offset", F.get_json_object(
        F.col("value").cast("string"), "$.user_id").alias("raw_user"))
    sample = s.join(b, ["partition", "offset"]).select("user_id", "raw_user").limit(20).collect()
    assert sample and all(r["user_id"] == hmac.new(SECRET.encode(), r["raw_user"].encode(), hashlib.sha256).hexdigest()
                          for r in sample)
    with_product = s.filter(F.col("product_id").isNotNull())
    assert with_product.count() > 0 and with_product.filter(F.col("product_category").isNull()).count() == 0
    assert s.filter(F.col("offered_plans").isNull()).count() == 0  # every city has offers
    assert s.filter(F.col("_rescued_data").isNotNull()).count() > 0
    assert {"event_date", "event_hour", "lateness_ms"} <= set(s.columns) and "value" not in s.columns


def test_silver_telemetry_badges_get_zones_and_pseudonymous_badge_ids(spark, lake):
    cfg, _ = lake
    s = table(spark, cfg, "silver.telemetry")
    badges = s.filter(F.col("device_kind") == "badge_sensor")
    assert badges.count() > 0 and badges.filter(F.col("zone_name").isNull()).count() == 0
    assert badges.filter(F.col("badge_id").rlike("^b[0-9]+$")).count() == 0
    vehicles = s.filter(F.col("device_kind") == "vehicle")
    assert vehicles.filter(F.col("engine_temp_c").isNull() | F.col("lat").isNull()).count() == 0


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_stream_and_batch_give_the_same_silver(spark, lake, topic):
    cfg, _ = lake
    name = f"silver_{topic}"
    static = spark.read.format("delta").load(cfg.lake.table_path(f"bronze.{topic}"))
    batch = valid_rows(build_checked_batch(spark, cfg.pipeline(name), static))
    streamed = table(spark, cfg, f"silver.{topic}")
    assert_df_equality(event_rows(streamed.select(*batch.columns)), event_rows(batch), ignore_row_order=True,
                       ignore_nullable=True)
    assert streamed.count() == batch.count()


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_conflicting_resends_are_quarantined_as_the_batch_does_and_verify_counts_them(spark, lake, topic):
    """A resend of an event_id with other content is visible, in quarantine; verify tells it from an
    identical resend (dropped) and fails when one vanishes, as dedup let it before."""
    cfg, sent = lake
    name, coords = f"silver_{topic}", ["topic", "partition", "offset"]
    static = spark.read.format("delta").load(cfg.lake.table_path(f"bronze.{topic}"))
    batch = quarantine_rows(build_checked_batch(spark, cfg.pipeline(name), static), name).filter(F.col("reason") == CONFLICT)
    streamed = table(spark, cfg, f"quarantine.{topic}").filter(F.col("reason") == CONFLICT)
    assert sorted(streamed.select(*coords).collect()) == sorted(batch.select(*coords).collect())
    assert streamed.count() == sent[topic].faults["conflicting_resend"] > 0
    check = check_silver(spark, cfg, name)
    assert check.ok, check.detail
    assert check.figures["conflicting_resends"] == sent[topic].faults["conflicting_resend"]
    assert check.figures["resends_dropped"] == sent[topic].faults["duplicate"]
    # Today's lake had the conflicts dropped: a quarantine without them fails verify, by name.
    table(spark, cfg, f"quarantine.{topic}").filter(F.col("reason") != CONFLICT).write.format("delta") \
        .save(cfg.lake.table_path(f"quarantine.{topic}_without_conflicts"))
    p = cfg.pipelines[name]
    sink = p.sink.model_copy(update={"quarantine": f"quarantine.{topic}_without_conflicts"})
    dropped = cfg.model_copy(update={"pipelines": {**cfg.pipelines, name: p.model_copy(update={"sink": sink})}})
    check = check_silver(spark, dropped, name)
    assert not check.ok and check.figures["conflicts_dropped"] == sent[topic].faults["conflicting_resend"]
    assert "resends with other content than the landed copy in neither silver nor quarantine" in check.detail


def test_rerun_adds_nothing(spark, lake):
    cfg, _ = lake
    before = {t: table(spark, cfg, t).count() for t in ("silver.clickstream", "quarantine.clickstream")}
    reports = run_pipelines(spark, cfg, ["silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    assert sum(r.input_rows for r in reports) == 0
    assert {t: table(spark, cfg, t).count() for t in before} == before


def test_a_running_stream_picks_up_dimension_updates(spark, broker_conf, tmp_path):
    cfg = make_config(broker_conf, tmp_path)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    write_reference_tables(spark, cfg)
    produce(cfg, ProduceSpec("clickstream", count=800, seed=5))
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    query = start_pipeline(spark, cfg.pipeline("silver_clickstream"), TriggerConf(processing_time="1 second"))
    try:
        query.processAllAvailable()
        products = table(spark, cfg, "dim.products")
        products.withColumn("category", F.lit("relabelled")).write.format("delta").mode("overwrite") \
            .save(cfg.lake.table_path("dim.products"))
        cut = datetime.now(timezone.utc).replace(tzinfo=None)
        produce(cfg, ProduceSpec("clickstream", count=800, seed=6))
        run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
        query.processAllAvailable()
    finally:
        query.stop()
    s = table(spark, cfg, "silver.clickstream").filter(F.col("product_id").isNotNull())
    before = {r["product_category"] for r in s.filter(F.col("kafka_timestamp") < cut).collect()}
    after = {r["product_category"] for r in s.filter(F.col("kafka_timestamp") >= cut).collect()}
    assert before and "relabelled" not in before  # rows written earlier keep what they were joined with
    assert after == {"relabelled"}  # the running query joined new rows with the new catalog version


# -- gold, end to end: hand-checked against silver ---------------------------------------------

def test_gold_page_minute_adds_up_to_silver(spark, lake):
    cfg, _ = lake
    silver = table(spark, cfg, "silver.clickstream")
    gold = table(spark, cfg, "gold.page_minute")
    totals = gold.agg(F.sum("events"), F.sum("purchases"), F.sum("units"), F.sum("revenue")).first()
    purchases = silver.filter("event_type = 'purchase'")
    revenue = purchases.agg(F.sum(F.col("price").cast("decimal(12,2)") * F.col("quantity"))).first()[0]
    # Late events are at most 30 minutes late, inside the 1 hour allowance: every silver event counts.
    assert totals[0] == silver.count() and totals[1] == purchases.count() > 0
    assert totals[2] == purchases.agg(F.sum("quantity")).first()[0] and totals[3] == revenue
    assert gold.count() == gold.select("window_start", "page", "product_id").distinct().count()
    # One hand-picked minute and page: the busiest product page.
    top = gold.filter(F.col("product_id").isNotNull()).orderBy(F.desc("views"), "window_start", "page").first()
    in_minute = silver.filter((F.col("page") == top["page"]) & (F.col("event_time") >= top["window_start"])
                              & (F.col("event_time") < top["window_end"]) & (F.col("product_id") == top["product_id"]))
    assert top["views"] == in_minute.filter("event_type = 'page_view'").count()
    assert top["unique_users"] == in_minute.select("user_id").distinct().count()


def test_gold_device_minute_matches_the_readings(spark, lake):
    cfg, _ = lake
    vehicles = table(spark, cfg, "silver.telemetry").filter("device_kind = 'vehicle'")
    gold = table(spark, cfg, "gold.device_minute")
    assert gold.agg(F.sum("readings")).first()[0] == vehicles.count()
    row = gold.orderBy(F.desc("readings"), "device_id").first()
    raw = vehicles.filter((F.col("device_id") == row["device_id"]) & (F.col("event_time") >= row["window_start"])
                          & (F.col("event_time") < row["window_end"]))
    expected = raw.agg(F.min("engine_temp_c"), F.max("engine_temp_c"), F.max("speed_kmh"),
                       F.max("odometer_km") - F.min("odometer_km")).first()
    assert (row["engine_temp_min_c"], row["engine_temp_max_c"], row["speed_max_kmh"]) == tuple(expected[:3])
    assert row["distance_km"] == round(expected[3], 3)


def test_gold_zone_occupancy_counts_entries_and_ranks_zones(spark, lake):
    cfg, _ = lake
    badges = table(spark, cfg, "silver.telemetry").filter("device_kind = 'badge_sensor'")
    gold = table(spark, cfg, "gold.zone_occupancy")
    assert gold.agg(F.sum("entries")).first()[0] == badges.filter("direction = 'in'").count() > 0
    for window in gold.select("window_start").distinct().collect():
        zones = gold.filter(F.col("window_start") == window[0]).orderBy("concentration_rank").collect()
        assert zones[0]["concentration_rank"] == 1
        assert [z["visitors"] for z in zones] == sorted((z["visitors"] for z in zones), reverse=True)
