"""``kappalake`` command line: broker, topics, producers, ingestion, summaries and the demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from kappalake.config import Config, ConfigError, TriggerConf, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kappalake", description=__doc__)
    p.add_argument("--profile", default="local", help="configuration profile: conf/<profile>.yaml (default: local)")
    p.add_argument("--conf-dir", help="directory holding base.yaml and the profiles (default: ./conf)")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="extra YAML merged on top (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one key, e.g. --set broker.port=19092 (repeatable)")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("config", help="show, validate or read the effective configuration")
    c.add_argument("action", choices=["show", "validate", "get"])
    c.add_argument("key", nargs="?", help="dotted key for 'get', e.g. spark.kafka_connector_version")

    b = sub.add_parser("broker", help="the embedded local Kafka broker")
    b.add_argument("action", choices=["fetch", "start", "stop", "status"])

    t = sub.add_parser("topics", help="create or list the configured topics")
    t.add_argument("action", choices=["create", "list"])

    pr = sub.add_parser("produce", help="send generated events to a topic")
    pr.add_argument("topic", choices=["clickstream", "telemetry"])
    pr.add_argument("--count", type=int, default=10_000)
    pr.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    pr.add_argument("--seed", type=int, default=None)

    i = sub.add_parser("ingest", help="run the configured streaming pipelines")
    i.add_argument("--pipeline", action="append", dest="pipelines", help="pipeline name (repeatable; default: all)")
    g = i.add_mutually_exclusive_group()
    g.add_argument("--available-now", action="store_true", help="process what is in Kafka now, then stop")
    g.add_argument("--processing-time", help="micro-batch interval, e.g. '5 seconds' (overrides conf)")
    i.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")

    sub.add_parser("summary", help="rows, files and versions of every configured Delta table")

    d = sub.add_parser("demo", help="the main job: broker, producers, ingestion to completion, summary")
    d.add_argument("--events", type=int, default=5000, help="events per topic (default 5000)")
    d.add_argument("--keep-broker", action="store_true", help="leave the broker running afterwards")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.profile, args.conf_dir, args.config, args.overrides)
        return COMMANDS[args.command](cfg, args)
    except ConfigError as e:
        print(f"kappalake: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - one readable line for known failures, traceback otherwise
        from kappalake.ingest.broker import BrokerError
        from kappalake.pipelines.runner import PipelineError

        if isinstance(e, (BrokerError, PipelineError)):
            print(f"kappalake: {e}", file=sys.stderr)
            return 1
        raise


# -- commands ------------------------------------------------------------------------------

def cmd_config(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "validate":
        from kappalake.pipelines.runner import validate_pipelines

        validate_pipelines(cfg)
        print(f"configuration OK (profile {cfg.profile}, {len(cfg.pipelines)} pipelines, {len(cfg.topics)} topics)")
    elif args.action == "get":
        if not args.key:
            raise ConfigError("'config get' needs a dotted key, e.g. spark.kafka_connector_version")
        value: Any = cfg.redacted()
        for part in args.key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ConfigError(f"no key {args.key!r} in the configuration")
            value = value[part]
        print(value if isinstance(value, str) else json.dumps(value))
    else:
        import yaml

        print(yaml.safe_dump(cfg.redacted(), sort_keys=False), end="")
    return 0


def cmd_broker(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest.broker import LocalBroker

    broker = LocalBroker(cfg.broker)
    if args.action == "fetch":
        print(f"Kafka {cfg.broker.kafka_version} jars in {broker.fetch()}")
    elif args.action == "start":
        _require_embedded(cfg)
        st = broker.start()
        print(f"Kafka {st.kafka_version} broker running on {st.address} (pid {st.pid}, data {st.data_dir})")
    elif args.action == "stop":
        print("broker stopped" if broker.stop() else "broker was not running")
    else:
        st = broker.status()
        print(json.dumps(st.__dict__, indent=2))
        return 0 if st.running else 3
    return 0


def cmd_topics(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest.topics import admin_client, ensure_topics

    if args.action == "create":
        created = ensure_topics(cfg)
        print(f"created: {', '.join(created) or '(none, all exist)'}")
    else:
        admin = admin_client(cfg)
        try:
            for name in sorted(admin.list_topics()):
                print(name)
        finally:
            admin.close()
    return 0


def cmd_produce(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest.events import GENERATORS
    from kappalake.ingest.producer import produce

    seed = args.seed if args.seed is not None else int(time.time())
    stats = produce(cfg, args.topic, GENERATORS[args.topic](args.count, seed=seed), rate=args.rate,
                    progress=lambda s: print(f"\r{args.topic}: sent {s.sent} acked {s.acked} errors {s.errors} "
                                             f"({s.rate:,.0f}/s)", end="", flush=True))
    print()
    if stats.errors:
        print(f"{stats.errors} events failed: {stats.last_error}", file=sys.stderr)
        return 1
    return 0


def cmd_ingest(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.pipelines.runner import run_pipelines, validate_pipelines
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
    spark = get_spark(cfg)
    reports = run_pipelines(spark, cfg, names, trigger=trigger, timeout=args.timeout, on_progress=_print_progress)
    for r in reports:
        print(f"{r.pipeline}: {r.input_rows} rows in {r.batches} batches")
    return 0


def cmd_summary(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.session import get_spark

    print_summary(get_spark(cfg), cfg)
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest.broker import LocalBroker
    from kappalake.ingest.events import GENERATORS
    from kappalake.ingest.producer import produce
    from kappalake.ingest.topics import ensure_topics
    from kappalake.pipelines.runner import run_pipelines, validate_pipelines
    from kappalake.session import get_spark

    names = validate_pipelines(cfg)
    broker = LocalBroker(cfg.broker)
    started_here = False
    if cfg.broker.mode == "embedded":
        started_here = broker.pid() is None
        print(f"[1/5] Kafka broker: fetching Kafka {cfg.broker.kafka_version} if needed and starting on {broker.address}")
        broker.start()
    try:
        print(f"[2/5] topics: {', '.join(cfg.topic_name(t) for t in cfg.topics)}")
        ensure_topics(cfg)
        print(f"[3/5] producing {args.events} events per topic")
        produced = {}
        for i, topic in enumerate(sorted({cfg.pipelines[n].source.topic for n in names})):
            stats = produce(cfg, topic, GENERATORS[topic](args.events, seed=int(time.time()) + i))
            produced[topic] = stats.acked
            print(f"      {topic}: {stats.acked} acked, {stats.errors} errors, {stats.rate:,.0f} events/s")
        print("[4/5] streaming Kafka -> bronze (availableNow: everything in the topics, then stop)")
        spark = get_spark(cfg)
        reports = run_pipelines(spark, cfg, names, trigger=TriggerConf(available_now=True), on_progress=_print_progress)
        for r in reports:
            print(f"      {r.pipeline}: {r.input_rows} new rows in {r.batches} batches, {r.seconds:.1f}s")
        print("[5/5] what landed in each table")
        print_summary(spark, cfg)
    finally:
        if started_here and not args.keep_broker:
            broker.stop()
            print("broker stopped")
    return 0


def _require_embedded(cfg: Config) -> None:
    if cfg.broker.mode != "embedded":
        raise ConfigError("broker.mode is external: kappalake does not manage that cluster (set broker.mode: embedded)")


def _print_progress(name: str, prog: dict) -> None:
    rows = prog.get("numInputRows", 0)
    if rows:
        rate = prog.get("processedRowsPerSecond") or 0
        dur = (prog.get("durationMs") or {}).get("triggerExecution", 0)
        print(f"      [{name}] batch {prog['batchId']}: {rows} rows, {dur} ms, {float(rate):,.0f} rows/s", flush=True)


def print_summary(spark: Any, cfg: Config) -> None:
    from kappalake.lake.tables import summarize_tables

    rows = summarize_tables(spark, cfg)
    header = f"{'table':<24}{'rows':>12}{'files':>8}{'MiB':>9}{'version':>9}  path"
    print(header)
    print("-" * len(header))
    for s in rows:
        if s.exists:
            print(f"{s.table:<24}{s.rows:>12,}{s.files:>8}{s.size_bytes / 2**20:>9.2f}{s.version:>9}  {s.path}")
        else:
            print(f"{s.table:<24}{'(missing)':>12}{'':>8}{'':>9}{'':>9}  {s.path}")


COMMANDS = {
    "config": cmd_config,
    "broker": cmd_broker,
    "topics": cmd_topics,
    "produce": cmd_produce,
    "ingest": cmd_ingest,
    "summary": cmd_summary,
    "demo": cmd_demo,
}
