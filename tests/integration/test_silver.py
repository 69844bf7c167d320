"""Kafka -> bronze -> silver + quarantine against the real broker, with every fault kind."""

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
from kappalake.pipelines.runner import apply_transforms, run_pipelines, start_pipeline, transform_specs
from kappalake.quality.quarantine import valid_rows
from tests.conftest import make_config
from tests.lake_checks import assert_exactly_once, bronze

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AVAILABLE_NOW = TriggerConf(available_now=True)
QUARANTINED = {"malformed_json", "missing_field", "wrong_type", "non_utf8", "oversized"}
SECRET = "kappalake-local-development-only"


def table(spark, cfg, name):
    return spark.read.format("delta").load(cfg.lake.table_path(name))


def header(name: str):
    return F.expr(f"cast(get(filter(headers, h -> h.key = '{name}'), 0).value as string)")


@pytest.fixture(scope="module")
def lake(spark, broker_conf, tmp_path_factory):
    """Both topics produced with every fault kind at 1%, run through bronze and silver."""
    cfg = make_config(broker_conf, tmp_path_factory.mktemp("silver"), **{
        "pipelines.bronze_clickstream.source.max_offsets_per_trigger": 1500,
        "pipelines.silver_clickstream.source.max_files_per_trigger": 1,
        "producer.users": 400,
    })
    ensure_topics(cfg)
    write_reference_tables(spark, cfg)
    faults = FaultRates.uniform(0.01)
    sent = {"clickstream": produce(cfg, ProduceSpec("clickstream", count=4000, seed=21, faults=faults)),
            "telemetry": produce(cfg, ProduceSpec("telemetry", count=3000, seed=22, faults=faults))}
    assert all(s.acked == s.sent and not s.errors for s in sent.values())
    reports = {r.pipeline: r for r in run_pipelines(spark, cfg, trigger=AVAILABLE_NOW, timeout=900)}
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
    # Broken payloads all in quarantine, none in silver; resent duplicates nowhere; the rest in silver.
    for kind in QUARANTINED:
        assert where.get((kind, "quarantine"), 0) == sent[topic].faults[kind] > 0
        assert (kind, "silver") not in where and (kind, None) not in where
    assert where.get(("duplicate", None), 0) == sent[topic].faults["duplicate"]
    for kind in ("late", "out_of_order", "extra_field"):
        assert where.get((kind, "silver"), 0) == sent[topic].faults[kind] > 0
    assert (None, None) not in where and (None, "quarantine") not in where
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
        expected = {"malformed_json": "malformed_json", "non_utf8": "not_utf8", "oversized": "oversized",
                    "missing_field": f"missing:{r['field']}", "wrong_type": f"wrong_type:{r['field']}"}[r["fault"]]
        assert expected in r["errors"], (r["fault"], r["field"], r["errors"])


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
    batch = valid_rows(apply_transforms(spark, cfg, static, transform_specs(cfg, name)))
    streamed = table(spark, cfg, f"silver.{topic}")
    assert_df_equality(streamed.select(*batch.columns), batch, ignore_row_order=True, ignore_nullable=True)


def test_rerun_adds_nothing(spark, lake):
    cfg, _ = lake
    before = {t: table(spark, cfg, t).count() for t in ("silver.clickstream", "quarantine.clickstream")}
    reports = run_pipelines(spark, cfg, ["silver_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    assert sum(r.input_rows for r in reports) == 0
    assert {t: table(spark, cfg, t).count() for t in before} == before


def test_a_running_stream_picks_up_dimension_updates(spark, broker_conf, tmp_path):
    cfg = make_config(broker_conf, tmp_path)
    ensure_topics(cfg, ["clickstream"])
    write_reference_tables(spark, cfg)
    produce(cfg, ProduceSpec("clickstream", count=800, seed=5))
    run_pipelines(spark, cfg, ["bronze_clickstream"], trigger=AVAILABLE_NOW, timeout=300)
    query = start_pipeline(spark, cfg, "silver_clickstream", TriggerConf(processing_time="1 second"))
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
