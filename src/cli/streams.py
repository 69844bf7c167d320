"""Streaming commands: run the pipelines, summarise the tables, follow the alerts topic."""

from __future__ import annotations

import argparse
import sys

from kappalake.cli.preflight import require_kafka
from kappalake.cli.render import print_progress, print_summary
from kappalake.config import Config, TriggerConf
from kappalake.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("ingest", help="run the configured streaming pipelines")
    i.add_argument("--pipeline", action="append", dest="pipelines", help="pipeline name (repeatable; default: all)")
    g = i.add_mutually_exclusive_group()
    g.add_argument("--available-now", action="store_true", help="process what is in Kafka now, then stop")
    g.add_argument("--processing-time", help="micro-batch interval, e.g. '5 seconds' (overrides conf)")
    i.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    i.set_defaults(run=cmd_ingest)

    sub.add_parser("summary", help="rows, files and versions of every configured Delta table").set_defaults(run=cmd_summary)

    al = sub.add_parser("alerts", help="follow the alerts topic (episodes from the detectors, fast-path flags)")
    al.add_argument("action", choices=["tail"])
    al.add_argument("--from-beginning", action="store_true", help="start at the oldest alert kept (default: new ones)")
    al.add_argument("--max", type=int, default=None, help="stop after this many alerts")
    al.add_argument("--timeout", type=float, default=None, help="stop after this many seconds without an alert")
    al.add_argument("--json", action="store_true", help="print each alert as one JSON line")
    al.add_argument("--topic", default="alerts", help="logical topic (default: alerts)")
    al.set_defaults(run=cmd_alerts)


def cmd_ingest(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.pipelines.plan import validate_pipelines
    from kappalake.pipelines.runner import run_pipelines
    from kappalake.session import get_spark

    names = validate_pipelines(cfg, args.pipelines)
    trigger = None
    if args.available_now:
        trigger = TriggerConf(available_now=True)
    elif args.processing_time:
        try:
            trigger = TriggerConf(processing_time=args.processing_time)
        except ValueError as e:
            raise ConfigError(f"--processing-time: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if any(cfg.pipelines[n].source.topic for n in names):
        require_kafka(cfg, connect=True)
    spark = get_spark(cfg)
    reports = run_pipelines(spark, cfg, names, trigger=trigger, timeout=args.timeout, on_progress=print_progress)
    for r in reports:
        print(f"{r.pipeline}: {r.input_rows} rows in {r.batches} batches")
    return 0


def cmd_summary(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.session import get_spark

    print_summary(get_spark(cfg), cfg)
    return 0


def cmd_alerts(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.alerts.tail import tail

    if args.topic not in cfg.topics:
        raise ConfigError(f"--topic {args.topic!r} is not declared under topics (declared: {', '.join(sorted(cfg.topics))})")
    try:
        tail(cfg.kafka_settings, as_json=args.json, topic=cfg.topic_name(args.topic), from_beginning=args.from_beginning,
             max_messages=args.max, timeout_s=args.timeout, out=lambda line: print(line, flush=True))
    except ValueError as e:
        print(f"kappalake: {e}", file=sys.stderr)
        return 1
    return 0
