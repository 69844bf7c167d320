"""`kappalake demo`: the main job, from an empty broker to what landed in each table."""

from __future__ import annotations

import argparse
import time

from kappalake.cli.render import (print_alerts, print_gold_highlights, print_progress, print_quality_metrics,
                                  print_quarantine_reasons, print_routes, print_summary)
from kappalake.config import Config, TriggerConf


def add_parsers(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="the main job: broker, producers, ingestion to completion, summary")
    d.add_argument("--events", type=int, default=5000, help="events per topic (default 5000)")
    d.add_argument("--faults", type=float, default=0.005, metavar="RATE",
                   help="rate of each fault kind in the produced events (default 0.005; 0 for clean input)")
    d.add_argument("--minutes", type=float, default=30, help="simulated minutes the events span (default 30)")
    d.add_argument("--pipeline", action="append", dest="pipelines",
                   help="run only this pipeline and what it reads from (repeatable; default: all)")
    d.add_argument("--keep-broker", action="store_true", help="leave the broker running afterwards")
    d.set_defaults(run=cmd_demo)


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.bi.queries import answers
    from kappalake.ingest.broker import LocalBroker
    from kappalake.ingest import simulators
    from kappalake.ingest.faults import FaultRates
    from kappalake.ingest.producer import ProduceSpec, produce
    from kappalake.ingest.topics import ensure_topics
    from kappalake.pipelines.reference import write_reference_tables
    from kappalake.pipelines.plan import validate_pipelines, with_upstream
    from kappalake.pipelines.runner import run_pipelines
    from kappalake.session import get_spark

    names = validate_pipelines(cfg, with_upstream(cfg.pipelines, args.pipelines) if args.pipelines else None)
    if cfg.monitoring.json_log == "-":  # keep the demo's console readable: the JSON lines go to a file
        cfg = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(
            update={"json_log": ".kappalake/logs/stream-metrics.jsonl"})})
    broker = LocalBroker(cfg.broker)
    started_here = False
    if cfg.broker.mode == "embedded":
        started_here = broker.pid() is None
        print(f"[1/5] Kafka broker: fetching Kafka {cfg.broker.kafka_version} if needed and starting on {broker.address}")
        broker.start()
    try:
        print(f"[2/5] topics: {', '.join(cfg.topic_name(t) for t in cfg.topics)}")
        ensure_topics(cfg.kafka_settings, cfg.topic_specs())
        print(f"[3/5] simulating {args.events:,} events per topic over the last {args.minutes:g} minutes (sessions "
              f"and funnels; vehicles on routes, badge sensors, the hot-truck scenario; sign-ups where plans are and are not), "
              f"each fault kind at {args.faults:g}")
        # A small world, so that a few thousand events fill the span: sessions finish, zones fill.
        world = {"users": 1000, "devices": 20, "people": 400}
        for i, topic in enumerate(sorted({t for n in names if (t := cfg.pipelines[n].source.topic)})):
            if topic not in simulators.topics():  # fed by its own producers: the demo has nothing to send
                print(f"      {topic}: no simulator registered, nothing sent")
                continue
            # A topic with the hot-truck script plays it: scripted excursions the alerts must catch.
            scenario = "hot-truck" if "hot-truck" in simulators.get(topic).scenarios else None
            stats = produce(cfg, ProduceSpec(topic, count=args.events, seed=int(time.time()) + i, scenario=scenario,
                                             span=args.minutes * 60, faults=FaultRates.uniform(args.faults), **world))
            print(f"      {topic}: {stats.acked:,} acked, {stats.errors} errors, {stats.rate:,.0f} events/s, "
                  f"{sum(stats.faults.values()):,} with injected faults")
        print("[4/5] dimension tables from the seeded reference data, then streaming Kafka -> bronze -> "
              "silver + quarantine -> gold (availableNow: everything there is, then stop)")
        spark = get_spark(cfg)
        for table, rows in write_reference_tables(spark, cfg).items():
            print(f"      {table}: {rows:,} rows")
        reports = run_pipelines(spark, cfg, names, trigger=TriggerConf(available_now=True), on_progress=print_progress)
        for r in reports:
            print(f"      {r.pipeline}: {r.input_rows} new rows in {r.batches} batches, {r.seconds:.1f}s")
        print("[5/5] what landed in each table")
        print_summary(spark, cfg)
        answer = answers(spark, cfg)  # the lake's tables registered once for the summaries
        print_quality_metrics(spark, cfg, answer)
        print_quarantine_reasons(spark, cfg)
        print_gold_highlights(spark, cfg, answer)
        print_alerts(spark, cfg, answer)
        print_routes(cfg)
    finally:
        if started_here and not args.keep_broker:
            from pyspark.sql import SparkSession

            from kappalake.session import stop_spark

            if (active := SparkSession.getActiveSession()) is not None:
                stop_spark(active)  # first, while the broker its queries and producers use is still there
            broker.stop()
            print("broker stopped")
    print(f"see it in the browser: kappalake dashboard (http://127.0.0.1:{cfg.dashboard.port}/)")
    return 0
