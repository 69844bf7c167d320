"""The benchmark's measurements, each on its own lake (and topics where it needs fresh ones).

Every stage runs the project's real code (the runner, the transforms, the quality gate, the
Delta sinks) against the real local broker; only the feeds are benchmark-specific.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.bench.feed import PacedProducer, Pool, build_pool, paced, preload
from kappalake.bench.probes import MemorySampler, driver_jvm_pid, growth, percentiles
from kappalake.bench.visibility import batch_trend, visible_latency
from kappalake.config import Config, TriggerConf, derive
from kappalake.ingest import contracts
from kappalake.ingest.kafka_clients import python_client_kwargs, spark_kafka_options
from kappalake.ingest.simulators.base import parse_ms
from kappalake.ingest.topics import admin_client, end_offsets, ensure_topics
from kappalake.pipelines.reference import write_reference_tables
from kappalake.pipelines.runner import run_pipelines, start_pipeline
from kappalake.transforms.windows import interval_seconds

AVAILABLE_NOW = TriggerConf(available_now=True)
GOLD_CLICKSTREAM = ["gold_page_minute", "gold_sessions", "gold_funnel_hourly", "gold_concurrent_viewers",
                    "gold_product_demand"]


@dataclass
class Context:
    spark: SparkSession
    cfg: Config
    workspace: Path
    events: int
    pool_size: int
    broker_pid: int | None = None
    pools: dict[str, Pool] = field(default_factory=dict)
    topic: str = field(default_factory=lambda: f"bench_clickstream_{int(time.time())}")  # preloaded, shared
    topics: list[str] = field(default_factory=list)  # created by this run, deleted at its end

    def stage_cfg(self, stage: str, **overrides: Any) -> Config:
        """The configuration of one stage: its own lake and checkpoints under the workspace."""
        root = self.workspace / stage
        shutil.rmtree(root, ignore_errors=True)
        values = {"lake.root": str(root / "lake"), "lake.checkpoint_root": str(root / "checkpoints"),
                  "topics.clickstream.name": self.topic, "monitoring.json_log": None, **overrides}
        return derive(self.cfg, values)

    def pool(self, topic: str) -> Pool:
        if topic not in self.pools:
            self.pools[topic] = build_pool(self.cfg, topic, self.pool_size)
        return self.pools[topic]


def say(message: str) -> None:
    print(f"[bench]   {message}", flush=True)


def delete_topics(ctx: Context) -> None:
    """Drop the topics this run created (millions of events would otherwise stay on the broker)."""
    if not ctx.topics:
        return
    admin = admin_client(ctx.cfg.kafka_settings)
    try:
        admin.delete_topics(ctx.topics)
    finally:
        admin.close()


def rows_per_s(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds > 0 else 0.0


# -- 0: preload ----------------------------------------------------------------------------------

def preload_topic(ctx: Context) -> dict:
    """``events`` clickstream events into a fresh topic, through Spark's Kafka sink."""
    cfg = ctx.stage_cfg("preload")
    ctx.topics += ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    t0 = time.perf_counter()
    pool = ctx.pool("clickstream")
    pool_s = time.perf_counter() - t0
    seconds = preload(ctx.spark, cfg, "clickstream", pool, ctx.events)
    landed = sum(end_offsets(cfg.kafka_settings, ctx.topic).values())
    if landed != ctx.events:
        raise RuntimeError(f"preload: {landed} events in {ctx.topic}, expected {ctx.events}")
    return {"events": landed, "seconds": round(seconds, 3), "events_per_s": rows_per_s(landed, seconds),
            "pool": len(pool), "pool_seconds": round(pool_s, 2), "partitions": cfg.topics["clickstream"].partitions}


# -- 1: limit ------------------------------------------------------------------------------------

def limit(ctx: Context) -> dict:
    """The same payloads from a Parquet copy: ``from_json`` with the contract's schema, written
    as Parquet. What this machine's Spark does at best with this data."""
    cfg = ctx.stage_cfg("limit")
    root = ctx.workspace / "limit"
    copy, out = str(root / "payloads.parquet"), str(root / "parsed.parquet")
    raw = (ctx.spark.read.format("kafka").options(**spark_kafka_options(cfg.kafka_settings)).option("subscribe", ctx.topic)
           .option("startingOffsets", "earliest").load().select("value"))
    raw.write.mode("overwrite").parquet(copy)
    schema = contracts.spark_schema("clickstream")
    start = time.perf_counter()
    (ctx.spark.read.parquet(copy).select(F.from_json(F.col("value").cast("string"), schema).alias("e")).select("e.*")
     .write.mode("overwrite").parquet(out))
    seconds = time.perf_counter() - start
    rows = ctx.spark.read.parquet(out).count()
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": rows_per_s(rows, seconds)}


# -- 2, 3, 6: availableNow runs ------------------------------------------------------------------

def _run(ctx: Context, cfg: Config, names: list[str]) -> tuple[float, dict[str, dict]]:
    start = time.perf_counter()
    reports = run_pipelines(ctx.spark, cfg, names, trigger=AVAILABLE_NOW)
    seconds = time.perf_counter() - start
    return seconds, {r.pipeline: {"rows": r.input_rows, "batches": r.batches, "seconds": round(r.seconds, 2)}
                     for r in reports}


def passthrough(ctx: Context) -> dict:
    """Kafka -> bronze Delta only (availableNow)."""
    cfg = ctx.stage_cfg("passthrough")
    seconds, per = _run(ctx, cfg, ["bronze_clickstream"])
    rows = per["bronze_clickstream"]["rows"]
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": rows_per_s(rows, seconds), "pipelines": per}


def full(ctx: Context) -> dict:
    """Kafka -> bronze -> silver (parse, quality split, dedup, pseudonymise, enrich) -> the five
    clickstream gold tables, availableNow, in the runner's waves."""
    cfg = ctx.stage_cfg("full")
    write_reference_tables(ctx.spark, cfg)
    seconds, per = _run(ctx, cfg, ["bronze_clickstream", "silver_clickstream", *GOLD_CLICKSTREAM])
    silver, quarantined = _count(ctx.spark, cfg, "silver.clickstream"), _count(ctx.spark, cfg, "quarantine.clickstream")
    sv = per["silver_clickstream"]
    return {"events": ctx.events, "seconds": round(seconds, 3), "events_per_s": rows_per_s(ctx.events, seconds),
            "silver_rows_per_s": rows_per_s(sv["rows"], sv["seconds"]), "silver": silver, "quarantine": quarantined,
            "silver_plus_quarantine": silver + quarantined, "pipelines": per,
            "stage_seconds": {"bronze": per["bronze_clickstream"]["seconds"], "silver": per["silver_clickstream"]["seconds"],
                              "gold": max(per[n]["seconds"] for n in GOLD_CLICKSTREAM)}}


def quality_cost(ctx: Context) -> dict:
    """bronze -> silver over the full stage's bronze table, with the expectation suite and
    without it (the contract split stays), from fresh silver tables."""
    base = ctx.workspace / "full"
    # The renamed silver table leaves maintenance.zorder naming a table nobody writes: drop it.
    base_cfg = ctx.cfg.model_copy(update={"maintenance": ctx.cfg.maintenance.model_copy(update={"zorder": {}})})
    out = {}
    for label, with_suite in (("with_expectations", True), ("without_expectations", False)):
        table = f"bench.silver_{label}"
        cfg = derive(base_cfg, {
            "lake.root": str(base / "lake"), "lake.checkpoint_root": str(ctx.workspace / f"quality_{label}"),
            "monitoring.json_log": None, "topics.clickstream.name": ctx.topic,
            "pipelines.silver_clickstream.sink.table": table,
            "pipelines.silver_clickstream.sink.quarantine": f"bench.quarantine_{label}",
        })
        # Suites are keyed by table: the renamed table gets silver's suite, or none at all.
        suites = {table: ctx.cfg.quality.suites["silver.clickstream"]} if with_suite else {}
        cfg = cfg.model_copy(update={"quality": cfg.quality.model_copy(update={"suites": suites})})
        seconds, per = _run(ctx, cfg, ["silver_clickstream"])
        rows = per["silver_clickstream"]["rows"]
        out[label] = {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": rows_per_s(rows, seconds)}
    w, wo = out["with_expectations"]["rows_per_s"], out["without_expectations"]["rows_per_s"]
    out["ratio"] = round(w / wo, 3) if wo else None
    return out


def _count(spark: SparkSession, cfg: Config, table: str) -> int:
    return spark.read.format("delta").load(cfg.lake.table_path(table)).count()


# -- 4, 5: sustained feeds -------------------------------------------------------------------------

def sustained(ctx: Context, stage: str, rate: int, seconds: float, names: list[str], trigger: str | None,
              warmup_s: float, sample_s: float = 5.0, visible_in: str = "silver.clickstream",
              start: Callable[[SparkSession, Config, str], Any] | None = None, live_pool: bool = True) -> dict:
    """Feed ``rate`` clickstream events/s for ``seconds`` into a fresh topic while ``names`` stream
    (processing-time triggers); then produce-to-visible latency in ``visible_in`` from its change
    feed (commit time of the version that added each row minus its Kafka timestamp and its
    ``sent_at``) and, when that is not bronze, bronze's (the first hop's), process memory, state
    size and batch durations over the run. ``start`` starts a query in place of the pipeline
    ``names[i]`` (a bare Spark stream). ``live_pool``: send from the pool's first templates only
    (:meth:`Pool.live`: a lighter feed, its sessions a tenth as long)."""
    topic = f"bench_{stage}_{int(time.time())}"
    triggers = {f"pipelines.{n}.trigger": {"processing_time": trigger} for n in names if trigger}
    cfg = ctx.stage_cfg(stage, **{"topics.clickstream.name": topic,
                                  "lake.table_properties": {**ctx.cfg.lake.table_properties,
                                                            "delta.enableChangeDataFeed": "true"}}, **triggers)
    ctx.topics += ensure_topics(cfg.kafka_settings, cfg.topic_specs(["clickstream"]))
    write_reference_tables(ctx.spark, cfg)
    spark = ctx.spark
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "100000")
    pool = ctx.pool("clickstream")
    pool = pool.live() if live_pool else pool
    closers: list = []
    queries: dict = {}
    feed = None
    sampler = MemorySampler({"driver_jvm": driver_jvm_pid(spark), "driver_python": os.getpid(), "broker": ctx.broker_pid},
                            every_s=sample_s, gauges={
                                "state_rows": lambda: _state(queries, "numRowsTotal"),
                                "state_mib": lambda: round(_state(queries, "memoryUsedBytes") / 2**20, 1)})
    try:
        for n in names:
            queries[n] = start(spark, cfg, n) if start else start_pipeline(spark, cfg.pipeline(n), None, closers)
        feed = paced(spark, cfg, "clickstream", pool, rate, str(ctx.workspace / stage / "feed-checkpoint"))
        # The clock starts with the feed's first batch: on a busy machine its start-up took half
        # of a 6 s run, and the run fed half its rate.
        started = time.monotonic()
        while feed.lastProgress is None and time.monotonic() - started < 60:
            _raise_failed([feed, *queries.values()])
            time.sleep(0.1)
        say(f"{', '.join(names)} streaming; feeding {rate:,} events/s for {seconds:g} s")
        sampler.start()
        feed_start_ms = int(time.time() * 1000)
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            _raise_failed([feed, *queries.values()])
            time.sleep(1)
        feed.stop()
        fed = sum(end_offsets(cfg.kafka_settings, topic).values())
        say(f"{fed:,} events fed; waiting for {visible_in} to hold them all")
        drain = _drain(spark, cfg, fed, queries, deadline_s=max(60.0, seconds))
    finally:
        if sampler.is_alive():
            sampler.stop()
        _stop_all([feed, *queries.values()], closers)
    measured_from = feed_start_ms + int(warmup_s * 1000)
    return {
        "rate_target": rate, "seconds": seconds, "trigger": trigger or "as configured", "warmup_excluded_s": warmup_s,
        "events_fed": fed, "fed_events_per_s": rows_per_s(fed, seconds), "drain_s": drain,
        "latency_ms": visible_latency(spark, cfg.lake.table_path(visible_in), measured_from,
                                      sent=visible_in != "bronze.clickstream"),
        **({"bronze_latency_ms": visible_latency(spark, cfg.lake.table_path("bronze.clickstream"), measured_from, sent=False)}
           if visible_in != "bronze.clickstream" else {}),
        "memory": {k: growth(sampler.samples, k, warmup_s) for k in ("driver_jvm_rss_mib", "driver_python_rss_mib",
                                                                     "broker_rss_mib", "state_rows", "state_mib")},
        "batches": {q.name or n: batch_trend(q, warmup_s) for n, q in queries.items()},
        "samples": sampler.samples,
    }


def _stop_all(queries: list, closers: list) -> None:
    for q in queries:
        if q is not None and q.isActive:
            q.stop()
    for close in closers:
        close()


def _state(queries: dict, key: str) -> int:
    total = 0
    for q in queries.values():
        p = q.lastProgress
        for op in (p or {}).get("stateOperators", []):
            total += op.get(key) or 0
    return total


def _raise_failed(queries: list) -> None:
    for q in queries:
        if not q.isActive and q.exception() is not None:
            raise RuntimeError(f"query {q.name} failed: {str(q.exception())[:2000]}")


def _drain(spark: SparkSession, cfg: Config, fed: int, queries: dict, deadline_s: float) -> float | None:
    """Seconds until bronze holds every fed event and the queries have nothing left to read
    (None: not within the deadline). Silver + quarantine hold fewer rows than were fed: the
    feed's resends are deduplicated."""
    start, idle = time.monotonic(), 0
    while time.monotonic() - start < deadline_s:
        try:
            bronze = _count(spark, cfg, "bronze.clickstream")
        except Exception:  # noqa: BLE001 - not created yet
            bronze = 0
        busy = any(q.status["isDataAvailable"] or q.status["isTriggerActive"] for q in queries.values())
        idle = idle + 1 if bronze >= fed and not busy else 0
        if idle >= 3:
            return round(time.monotonic() - start, 1)
        time.sleep(1)
    return None


def _settle(queries: list, quiet_s: float, cap_s: float) -> None:
    """Return once ``queries`` have had no data to read and no batch running for ``quiet_s``
    (polled every 0.5 s), or after ``cap_s``."""
    start = quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() - start < cap_s:
        _raise_failed(queries)
        if any(q.status["isDataAvailable"] or q.status["isTriggerActive"] for q in queries):
            quiet_since = time.monotonic()
        time.sleep(0.5)


# -- 4b: alert paths -----------------------------------------------------------------------------

def alert_paths(ctx: Context, rate: int, seconds: float, warmup_s: float, trigger: str | None) -> dict:
    """Telemetry readings at ``rate``/s from kafka-python, two vehicles running hot 20 s of every
    40 s. Continuous path (``alerts_fast``: Kafka -> flags -> Kafka): alert append time minus
    the reading's Kafka timestamp. Micro-batch path (bronze -> silver -> ``alerts_telemetry``):
    append time of the episode's ``open`` alert minus the event time at which it was due
    (the reading that completed ``min_duration``; readings carry their send time as event
    time). The alerts topic stamps records at append (LogAppendTime)."""
    stage = "alerts"
    suffix = int(time.time())
    names = ["alerts_fast", "bronze_telemetry", "silver_telemetry", "alerts_telemetry"]
    triggers = {f"pipelines.{n}.trigger": {"processing_time": trigger} for n in names[1:] if trigger}
    cfg = ctx.stage_cfg(stage, **{
        "topics.telemetry.name": f"bench_telemetry_{suffix}", "topics.alerts.name": f"bench_alerts_{suffix}",
        "topics.alerts.config": {"message.timestamp.type": "LogAppendTime"},
        "pipelines.alerts_fast.source.starting_offsets": "earliest", "alerts.notifiers": []}, **triggers)
    ctx.topics += ensure_topics(cfg.kafka_settings, cfg.topic_specs(["telemetry", "alerts"]))
    write_reference_tables(ctx.spark, cfg)
    pool = _telemetry_templates(ctx)
    hot = sorted({e["device_id"] for e in pool if e.get("device_kind") == "vehicle" and "engine_temp_c" in e})[:2]
    closers: list = []
    queries: dict = {}
    producer = PacedProducer(cfg, pool, rate, hot)
    try:
        for n in names:
            queries[n] = start_pipeline(ctx.spark, cfg.pipeline(n), None, closers)
        start_ms = int(time.time() * 1000)
        producer.start()
        say(f"{', '.join(names)} streaming; {rate:,} readings/s for {seconds:g} s, hot: {', '.join(hot)}")
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            _raise_failed(list(queries.values()))
            time.sleep(1)
        producer.stop()
        # The last episodes' alerts come out once the micro-batch queries have run dry: no data
        # and no batch for a whole trigger interval (the watermark moves on in a batch of its own).
        batch = [n for n in names if cfg.pipelines[n].trigger.processing_time]
        quiet = max(interval_seconds(trigger or cfg.pipelines[n].trigger.processing_time) for n in batch) + 1
        _settle([queries[n] for n in batch], quiet_s=quiet, cap_s=max(15.0, 3 * quiet))
    finally:
        if producer.is_alive():
            producer.stop()
        _stop_all(list(queries.values()), closers)
    flags, opens = _alert_latencies(cfg, start_ms + int(warmup_s * 1000))
    return {"rate_target": rate, "seconds": seconds, "readings_sent": producer.sent, "hot_readings": producer.hot_sent,
            "sent_per_s": rows_per_s(producer.sent, seconds), "hot_devices": hot, "trigger": trigger or "as configured",
            "continuous_ms": percentiles(flags), "micro_batch_ms": percentiles(opens),
            "micro_batch_note": "includes the detector's watermark lateness "
                                f"({_lateness(cfg)}) by design: readings wait for it so out-of-order input gives the same alerts"}


def _telemetry_templates(ctx: Context) -> list[dict]:
    from kappalake.ingest.producer import ProduceSpec, simulate

    sim = simulate(ctx.cfg, ProduceSpec("telemetry", count=2000, seed=11, span=60))  # an endless iterator
    return [ev.event for ev in itertools.islice(sim, 2000)]


def _lateness(cfg: Config) -> str:
    for t in cfg.pipelines["alerts_telemetry"].transforms:
        if isinstance(t, dict) and "lateness" in t:
            return t["lateness"]
    return "?"


def _alert_latencies(cfg: Config, from_ms: int) -> tuple[list[float], list[float]]:
    from kafka import KafkaConsumer, TopicPartition

    topic = cfg.topic_name("alerts")
    consumer = KafkaConsumer(**python_client_kwargs(cfg.kafka_settings), enable_auto_commit=False, consumer_timeout_ms=3000)
    flags, opens = [], []
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        for msg in consumer:
            a = json.loads(msg.value)
            if a.get("kind") == "hard_limit":
                src = parse_ms(a["source_timestamp"])
                if src >= from_ms:
                    flags.append(msg.timestamp - src)
            elif a.get("event") == "open" and a.get("event_time"):
                due = parse_ms(a["event_time"])  # the reading that completed min_duration
                if due >= from_ms:
                    opens.append(msg.timestamp - due)
    finally:
        consumer.close()
    return flags, opens
