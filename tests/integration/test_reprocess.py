"""Reprocessing with the stream's own code: equivalence, idempotence, fixes by range, full
replay from Kafka, and reprocessing while the streams write."""

from __future__ import annotations

import copy
import threading
import time
from datetime import timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.config import Config, TriggerConf
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, produce
from kappalake.ingest.topics import end_offsets, ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.reprocess import processed_offsets, reprocess_full, reprocess_range
from kappalake.pipelines.compose import build_batch, build_checked_batch
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from kappalake.quality.gate import OUTCOME
from kappalake.quality.quarantine import valid_rows
from tests.conftest import make_config
from tests.lake_checks import later_copies, table

PIPELINES = ["bronze_clickstream", "silver_clickstream", "gold_page_minute", "gold_sessions"]
COORDS = ["topic", "partition", "offset"]


def version(spark, cfg: Config, name: str) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, cfg.lake.table_path(name)).history(1).first()["version"]


def with_coarsen(cfg: Config, decimals: int) -> Config:
    """``cfg`` with silver's location coarsening changed (a 'fix' to roll out over history)."""
    p = cfg.pipelines["silver_clickstream"]
    transforms = [dict(t, decimals=decimals) if isinstance(t, dict) and t.get("name") == "coarsen" else t
                  for t in p.transforms]
    pipelines = {**cfg.pipelines, "silver_clickstream": p.model_copy(update={"transforms": transforms})}
    return cfg.model_copy(update={"pipelines": pipelines})


def with_price_max(cfg: Config, max_value: float) -> Config:
    suites = copy.deepcopy(cfg.quality.suites)
    for e in suites["silver.clickstream"]["expectations"]:
        if e.get("meta", {}).get("rule") == "price_plausible":
            e["kwargs"]["max_value"] = max_value
    return cfg.model_copy(update={"quality": cfg.quality.model_copy(update={"suites": suites})})


@pytest.fixture(scope="module")
def lake(spark, broker_conf, tmp_path_factory):
    """Clickstream with faults at 1% (duplicates, broken payloads, implausible values), streamed
    through bronze, silver and two gold tables, several micro-batches each."""
    cfg = make_config(broker_conf, tmp_path_factory.mktemp("reprocess"), **{
        "producer.users": 300, "pipelines.bronze_clickstream.source.max_offsets_per_trigger": 700})
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    write_reference_tables(spark, cfg)
    produce(cfg, ProduceSpec("clickstream", count=2000, seed=31, span=900, faults=FaultRates.uniform(0.01)))
    run_pipelines(spark, cfg, PIPELINES, trigger=TriggerConf(available_now=True), timeout=600)
    return cfg


@pytest.mark.parametrize("name", ["silver.clickstream", "gold.page_minute"])
def test_reprocessing_everything_reproduces_what_the_stream_wrote(spark, lake, name):
    before = version(spark, lake, name)
    # Where the stream kept a resend instead of its original (both in one micro-batch), the
    # rebuild swaps in the original: the same event, arrived earlier.
    swapped = later_copies(spark, lake, table(spark, lake, name)) if name == "silver.clickstream" else 0
    r = reprocess_range(spark, lake, name)
    assert r.before == r.after == table(spark, lake, name).count() > 0
    assert (r.added, r.removed) == (swapped, swapped) and (r.version is None) == (swapped == 0), r
    assert version(spark, lake, name) == before + (swapped > 0)  # nothing written unless swapped
    if name == "silver.clickstream":
        assert r.quarantined == table(spark, lake, "quarantine.clickstream").count() > 0


def test_reprocessed_sessions_match_every_session_the_stream_closed(spark, lake):
    r = reprocess_range(spark, lake, "gold.sessions", dry_run=True)
    # The stream writes a session once it is over; the batch also sees the ones still open.
    assert r.removed == 0 and r.before == table(spark, lake, "gold.sessions").count() > 0
    assert r.after >= r.before


def test_a_fix_rebuilds_exactly_its_range_and_a_rerun_changes_nothing(spark, lake):
    silver = table(spark, lake, "silver.clickstream")
    original = silver.persist()
    original.count()
    lo, hi = silver.agg(F.percentile_approx("event_time", 0.5), F.max("event_time")).first()
    start, end = lo.replace(tzinfo=None), hi + timedelta(seconds=1)
    in_range = (F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end))
    fixed = with_coarsen(lake, 0)
    from datetime import timezone

    start_utc, end_utc = start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc)
    try:
        r = reprocess_range(spark, fixed, "silver.clickstream", start_utc, end_utc)
        expected_rows = original.filter(in_range).count()
        assert r.before == r.after == expected_rows > 0 and r.added == r.removed > 0 and r.version is not None, r
        now = table(spark, lake, "silver.clickstream")
        assert_df_equality(now.filter(~in_range), original.filter(~in_range), ignore_row_order=True)
        assert now.filter(in_range & (F.col("geo_lat") != F.round("geo_lat", 0))).count() == 0
        assert now.filter(in_range & F.col("geo_lat").isNotNull()).count() > 0

        rerun = reprocess_range(spark, fixed, "silver.clickstream", start_utc, end_utc)
        assert (rerun.added, rerun.removed, rerun.version) == (0, 0, None)
        assert version(spark, lake, "silver.clickstream") == r.version

        back = reprocess_range(spark, lake, "silver.clickstream", start_utc, end_utc)  # roll the fix back
        assert back.added == r.added and back.version == r.version + 1
        assert_df_equality(table(spark, lake, "silver.clickstream"), original, ignore_row_order=True)
    finally:
        original.unpersist()


def test_changed_rules_move_rows_between_table_and_quarantine(spark, lake):
    strict = with_price_max(lake, 200.0)
    q_before = table(spark, lake, "quarantine.clickstream").count()
    r = reprocess_range(spark, strict, "silver.clickstream")
    moved = r.removed
    assert moved > 0 and r.added == 0 and r.quarantined > q_before - 0
    assert table(spark, lake, "silver.clickstream").filter("price > 200").count() == 0
    q = table(spark, lake, "quarantine.clickstream")
    assert q.count() == q_before + moved
    assert q.filter(F.array_contains("errors", "price_plausible")).count() >= moved
    assert q.select(*COORDS).distinct().count() == q.count()

    back = reprocess_range(spark, lake, "silver.clickstream")
    assert back.added == moved and back.removed == 0
    assert table(spark, lake, "quarantine.clickstream").count() == q_before


def test_full_replay_from_kafka_swaps_in_the_rebuilt_rows(spark, lake):
    silver_before = table(spark, lake, "silver.clickstream").count()
    q_before = table(spark, lake, "quarantine.clickstream").count()
    r = reprocess_full(spark, with_coarsen(lake, 0), "silver.clickstream", wait_s=60)
    assert r.version is not None and r.before == r.after == silver_before and r.added > 0, r
    silver = table(spark, lake, "silver.clickstream")
    assert silver.count() == silver_before and silver.select(*COORDS).distinct().count() == silver_before
    assert silver.filter(F.col("geo_lat") != F.round("geo_lat", 0)).count() == 0
    assert table(spark, lake, "quarantine.clickstream").count() == q_before == r.quarantined
    side = lake.lake.table_path("silver.clickstream__rebuild")
    from delta.tables import DeltaTable

    assert not DeltaTable.isDeltaTable(spark, side)  # side tables are dropped afterwards
    reprocess_range(spark, lake, "silver.clickstream")  # restore the configured coarsening for the next test


def test_reprocess_while_streaming_loses_and_duplicates_nothing(spark, lake):
    """Bronze, silver and a gold MERGE sink stream while events arrive; meanwhile silver and gold
    are reprocessed (silver with a changed transform, so the range is really rewritten)."""
    cfg = lake
    trigger = TriggerConf(processing_time="1 second")
    queries = [start_pipeline(spark, cfg.pipeline(n), trigger) for n in ("bronze_clickstream", "silver_clickstream",
                                                                  "gold_page_minute")]
    producer = threading.Thread(target=produce, args=(cfg, ProduceSpec("clickstream", count=1500, seed=33, rate=250,
                                                                      faults=FaultRates.uniform(0.01))))
    try:
        producer.start()
        time.sleep(3)
        silver = reprocess_range(spark, with_coarsen(cfg, 0), "silver.clickstream")
        assert silver.version is not None and silver.added > 0, silver
        reprocess_range(spark, cfg, "gold.page_minute")
        producer.join(timeout=120)
        topic = cfg.topic_name("clickstream")
        deadline = time.monotonic() + 240
        while True:
            ends = end_offsets(cfg.kafka_settings, topic)
            done = processed_offsets(spark, cfg, "silver_clickstream") or {}
            if all(done.get((topic, p), -1) >= e - 1 for p, e in ends.items() if e):
                break
            assert all(q.isActive for q in queries), [q.exception() for q in queries]
            assert time.monotonic() < deadline, (ends, done)
            time.sleep(1)
        queries[2].processAllAvailable()
    finally:
        for q in queries:
            q.stop()
    assert all(q.exception() is None for q in queries)

    # Every bronze row is in silver or quarantine exactly as a batch over all of bronze puts it.
    judged = build_checked_batch(spark, cfg.pipeline("silver_clickstream")).persist()
    silver = table(spark, cfg, "silver.clickstream")
    quarantine = table(spark, cfg, "quarantine.clickstream")
    n = silver.count()
    assert silver.select(*COORDS).distinct().count() == n == silver.select("event_id").distinct().count()
    assert_df_equality(silver.select("event_id"), valid_rows(judged).select("event_id"), ignore_row_order=True)
    assert silver.join(valid_rows(judged), COORDS, "left_anti").count() == later_copies(spark, cfg, silver)
    assert_df_equality(quarantine.select(*COORDS),
                       judged.filter(F.col(OUTCOME) == "quarantined").select(*COORDS), ignore_row_order=True)
    judged.unpersist()
    # The gold MERGE sink (rewritten by a reprocess mid-stream) still sums to silver.
    gold = table(spark, cfg, "gold.page_minute").agg(F.sum("events")).first()[0]
    assert gold == build_batch(spark, cfg.pipeline("gold_page_minute")).agg(F.sum("events")).first()[0] > 0
