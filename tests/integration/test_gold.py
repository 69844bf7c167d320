"""Gold through the real runner: streamed in several micro-batches == one batch; late data,
out-of-order data, re-ranking and replayed MERGEs on real Delta tables."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import Window
from pyspark.sql import functions as F

from kappalake.config import RankConf, SinkConf, TriggerConf
from kappalake.ingest.faults import FaultRates
from kappalake.ingest.producer import ProduceSpec, records
from kappalake.lake.sinks import sink_writer
from kappalake.lake.writers import Txn
from kappalake.lake.tables import ensure_table
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.compose import build_batch, build_checked_batch, read_static_source
from kappalake.pipelines.runner import run_pipelines
from kappalake.quality.quarantine import valid_rows
from kappalake.transforms.gold_clickstream import page_minute_metrics, sessions
from kappalake.transforms.gold_telemetry import zone_occupancy
from tests.conftest import make_config
from tests.stream_harness import batch_through, stream_batches
from tests.unit.test_gold_transforms import CLICKS, TELEMETRY, at, badge, click

CHUNKS = 3
START_MS = int(dt.datetime(2026, 11, 21, 23, 59, 20, tzinfo=dt.timezone.utc).timestamp() * 1000)  # across midnight
BRONZE = ("key binary, value binary, topic string, partition int, offset long, kafka_timestamp timestamp, "
          "headers array<struct<key:string,value:binary>>")


def bronze_frame(spark, cfg, topic: str, count: int, seed: int):
    """Simulated records with duplicates and out-of-order delivery, shaped like bronze rows."""
    faults = FaultRates(duplicate=0.02, out_of_order=0.05)
    rows = []
    for i, r in enumerate(records(cfg, ProduceSpec(topic, count=count, seed=seed, start_ms=START_MS, rate=40,
                                                   faults=faults, users=300))):
        value = r.value if isinstance(r.value, bytes) else json.dumps(r.value, separators=(",", ":")).encode()
        ts = dt.datetime.fromtimestamp(r.due_ms / 1000, dt.timezone.utc)
        rows.append((r.key.encode(), value, topic, 0, i, ts, [(k, v) for k, v in r.headers]))
    return spark.createDataFrame(rows, BRONZE)


@pytest.fixture(scope="module")
def streamed(spark, tmp_path_factory):
    """Silver written as CHUNKS Delta versions (+ a clock event a day later), then every gold
    pipeline run by the runner as a stream, one silver version per micro-batch."""
    tmp = tmp_path_factory.mktemp("gold")
    gold = ["gold_page_minute", "gold_sessions", "gold_funnel_hourly", "gold_concurrent_viewers",
            "gold_product_demand", "gold_device_minute", "gold_zone_occupancy", "gold_fleet_health"]
    cfg = make_config({}, tmp, **{f"pipelines.{n}.source.max_files_per_trigger": 1 for n in gold})
    write_reference_tables(spark, cfg)
    for topic, count, seed in (("clickstream", 3000, 31), ("telemetry", 3000, 32)):
        silver = valid_rows(build_checked_batch(spark, cfg.pipeline(f"silver_{topic}"), bronze_frame(spark, cfg, topic, count, seed)))
        silver = cached = silver.withColumn("_chunk", F.ntile(CHUNKS).over(Window.orderBy("kafka_timestamp", "offset"))).persist()
        if topic == "clickstream":  # time passes: a day later every session is over (same last version)
            clock = (silver.filter(F.col("_chunk") == CHUNKS).orderBy("event_time").limit(1)
                     .withColumn("session_id", F.lit("clock")).withColumn("event_id", F.lit("clock"))
                     .withColumn("event_time", F.col("event_time") + F.expr("INTERVAL 1 DAY")))
            silver = silver.unionByName(clock)
        path = cfg.lake.table_path(f"silver.{topic}")
        for chunk in range(1, CHUNKS + 1):
            silver.filter(F.col("_chunk") == chunk).drop("_chunk").coalesce(1).write.format("delta").mode("append").save(path)
        cached.unpersist()
    reports = {r.pipeline: r for r in run_pipelines(spark, cfg, gold, trigger=TriggerConf(available_now=True), timeout=900)}
    return cfg, gold, reports


def test_every_gold_pipeline_ran_in_several_micro_batches(streamed):
    _, gold, reports = streamed
    for name in gold:
        assert reports[name].batches >= CHUNKS, (name, reports[name])


@pytest.mark.parametrize("name", ["gold_page_minute", "gold_sessions", "gold_funnel_hourly", "gold_concurrent_viewers",
                                  "gold_product_demand", "gold_device_minute", "gold_zone_occupancy",
                                  "gold_fleet_health"])
def test_streamed_gold_equals_one_batch_over_silver(spark, streamed, tmp_path, name):
    cfg, _, _ = streamed
    sink = cfg.pipelines[name].sink
    streamed_table = spark.read.format("delta").load(cfg.lake.table_path(sink.table))
    silver = read_static_source(spark, cfg.pipeline(name))
    expected = batch_through(spark, tmp_path, silver, lambda df: build_batch(spark, cfg.pipeline(name), df), sink)
    if name == "gold_sessions":  # the stream writes a session once it is over; the clock's is not
        expected = expected.filter(F.col("session_id") != "clock")
    assert streamed_table.count() > 0
    # Averages of doubles are rounded to 0.01 after summing in a different order: allow one step.
    assert_approx_df_equality(streamed_table, expected.select(*streamed_table.columns), 0.0101,
                              ignore_row_order=True, ignore_nullable=True)


def test_a_batch_over_an_older_silver_snapshot_sees_only_that_snapshot(spark, streamed):
    cfg, _, _ = streamed
    silver_v0 = spark.read.format("delta").option("versionAsOf", 0).load(cfg.lake.table_path("silver.telemetry"))
    minutes = build_batch(spark, cfg.pipeline("gold_device_minute"), version=0)
    assert minutes.agg(F.sum("readings")).first()[0] == silver_v0.filter("device_kind = 'vehicle'").count() > 0


def test_sessions_from_the_stream_are_complete_sessions(spark, streamed):
    cfg, _, _ = streamed
    s = spark.read.format("delta").load(cfg.lake.table_path("gold.sessions"))
    silver = spark.read.format("delta").load(cfg.lake.table_path("silver.clickstream")).filter("session_id != 'clock'")
    # Client sessions in the simulator never pause for 5 minutes: one row per session id, all events.
    assert s.count() == s.select("session_id").distinct().count() == silver.select("session_id").distinct().count()
    assert s.agg(F.sum("events")).first()[0] == silver.count()


def test_a_late_event_updates_its_open_window_and_a_too_late_one_is_left_to_batch(spark, tmp_path):
    first = [click(s, "page_view") for s in (0, 30, 1800)]  # newest event 08:30: watermark 08:20
    tick = [click(1700, "page_view")]  # the next batch runs with that watermark and closes minute 08:00
    late = [click(1500, "page_view"), click(10, "page_view")]  # 08:25 is within 10 minutes; 08:00:10 is not
    sink = SinkConf(table="gold.page_minute", mode="merge", keys=["window_start", "page", "product_id"])
    fn = lambda df: page_minute_metrics(df, lateness="10 minutes")  # noqa: E731
    batches = [spark.createDataFrame(x, CLICKS) for x in (first, tick, late)]
    out = {r["window_start"]: r["views"] for r in stream_batches(spark, tmp_path, batches, fn, sink).collect()}
    assert out == {at(0): 2, at(1500): 1, at(1680): 1, at(1800): 1}  # the closed minute kept its count
    everything = batches[0].unionByName(batches[1]).unionByName(batches[2])
    batch = batch_through(spark, tmp_path, everything, fn, sink)
    assert {r["window_start"]: r["views"] for r in batch.collect()}[at(0)] == 3  # a re-run over silver counts it


def test_out_of_order_events_across_micro_batches_join_their_session(spark, tmp_path):
    a = [click(0, "page_view"), click(200, "page_view"), click(5000, "page_view", session="s9")]
    b = [click(100, "add_to_cart", product="p1", price=10.0, qty=1), click(150, "purchase", product="p1", price=10.0, qty=1)]
    c = [click(9000, "page_view", session="s9")]  # moves the watermark past s1's end
    fn = lambda df: sessions(df, gap="5 minutes", lateness="10 minutes")  # noqa: E731
    out = stream_batches(spark, tmp_path, [spark.createDataFrame(x, CLICKS) for x in (a, b, c)], fn, SinkConf(table="gold.s"))
    s1 = out.filter("session_id = 's1'").collect()
    assert len(s1) == 1 and (s1[0]["events"], s1[0]["purchases"], s1[0]["converted"]) == (4, 1, True)
    assert (s1[0]["started_at"], s1[0]["ended_at"]) == (at(0), at(200))


def test_zones_are_re_ranked_when_a_later_batch_changes_the_order(spark, tmp_path):
    sink = SinkConf(table="gold.zone_occupancy", mode="merge", keys=["window_start", "zone_id"],
                    rank=RankConf(column="concentration_rank", within=["window_start"], by=["visitors desc"]))
    one = [badge(0, "z01", "b1"), badge(1, "z01", "b2"), badge(2, "z02", "b3"), badge(950, "z03", "b4")]
    two = [badge(10, "z02", "b5"), badge(11, "z02", "b6")]
    out = stream_batches(spark, tmp_path, [spark.createDataFrame(x, TELEMETRY) for x in (one, two)], zone_occupancy, sink)
    ranks = {(r["window_start"], r["zone_id"]): (r["visitors"], r["concentration_rank"]) for r in out.collect()}
    assert ranks == {(at(0), "z02"): (3, 1), (at(0), "z01"): (2, 2), (at(900), "z03"): (1, 1)}


def test_a_replayed_merge_batch_changes_nothing(spark, tmp_path):
    df = page_minute_metrics(spark.createDataFrame([click(0, "page_view"), click(61, "click")], CLICKS)).persist()
    sink = SinkConf(table="gold.page_minute", mode="merge", keys=["window_start", "page", "product_id"])
    path = str(tmp_path / "t")
    ensure_table(spark, path, df.schema, [], {})
    sink_writer(sink, path).write(df, Txn("a", 7))
    once = spark.read.format("delta").load(path).collect()
    sink_writer(sink, path).write(df, Txn("a", 7))  # a crash after the commit: Spark replays the batch
    assert_df_equality(spark.read.format("delta").load(path), spark.createDataFrame(once, df.schema),
                       ignore_row_order=True, ignore_nullable=True)
