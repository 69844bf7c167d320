"""``kappalake`` command line: broker, topics, producers, ingestion, summaries and the demo."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from datetime import datetime, timedelta, timezone
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kappalake.config import Config, TriggerConf, load_config
from kappalake.errors import ConfigError, KappalakeError
from kappalake.ingest.faults import FAULT_HELP, FAULT_KINDS

if TYPE_CHECKING:
    from kappalake.ingest.producer import ProduceSpec


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

    pr = sub.add_parser("produce", help="simulate events and send them to a topic (kafka-python)",
                        description="Simulate clickstream or telemetry events and send them, keyed by user_id / "
                                    "device_id. With --rate events are paced so event time follows the wall clock; "
                                    "without it they go as fast as possible, event times ending about now.")
    pr.add_argument("topic", choices=["clickstream", "telemetry"])
    pr.add_argument("--count", type=int, default=None, help="events to send (default 10,000 unless --duration)")
    pr.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    pr.add_argument("--rate", type=float, default=None, help="events per second, paced (default: as fast as possible)")
    pr.add_argument("--span", type=float, default=None, metavar="SECONDS",
                    help="unpaced: simulated seconds the events span, ending now (default: 1,000 events per second)")
    pr.add_argument("--seed", type=int, default=None, help="seed of the simulation (default: from the clock)")
    pr.add_argument("--start", default=None, help="event time of the first event, ISO-8601 (e.g. 2026-11-22T08:00:00Z)")
    pr.add_argument("--users", type=int, default=None, help="clickstream users (default producer.users)")
    pr.add_argument("--devices", type=int, default=None, help="telemetry vehicles (default producer.devices)")
    pr.add_argument("--people", type=int, default=None, help="badge holders on campus (default producer.people)")
    pr.add_argument("--diurnal", action="store_true", help="shape the rate by hour of day (rate = daily mean)")
    pr.add_argument("--scenario", choices=["hot-truck"], default=None,
                    help="telemetry: scripted excursions instead of random ones (hot-truck: truck-0000 engine hot for "
                         "45 s at 25%% of the run, reefer-0005 cargo warm for 30 s at 55%%, each for at least six of the "
                         "vehicle's readings; a 4 s blip on truck-0001)")
    pr.add_argument("--processes", type=int, default=1, help="parallel producer processes with disjoint keys")
    pr.add_argument("--acks", choices=["all", "1", "0"], help="override producer.acks")
    pr.add_argument("--linger-ms", type=int, help="override producer.linger_ms")
    pr.add_argument("--batch-size", type=int, help="override producer.batch_size (bytes)")
    pr.add_argument("--compression", choices=["none", "gzip", "lz4", "zstd", "snappy"], help="override producer.compression")
    pr.add_argument("--quiet", action="store_true", help="no progress display")
    fg = pr.add_argument_group("fault injection (fraction of events, 0..1; injected records carry a kl-fault header)")
    fg.add_argument("--faults", type=float, default=0.0, metavar="RATE", help="every fault kind below at RATE")
    for kind in FAULT_KINDS:
        fg.add_argument(f"--{kind.replace('_', '-')}", type=float, default=None, metavar="RATE", dest=f"fault_{kind}",
                        help=FAULT_HELP[kind])

    ct = sub.add_parser("contracts", help="event contracts (JSON Schema): show, docs, validate")
    ct.add_argument("action", choices=["show", "ddl", "docs", "validate"])
    ct.add_argument("topic", nargs="?", help="clickstream | telemetry (show, ddl, validate)")
    ct.add_argument("--file", help="validate: JSON lines file to check (default: stdin)")
    ct.add_argument("--output", help="docs: write here instead of stdout (e.g. docs/contracts.md)")

    rf = sub.add_parser("reference", help="seeded dimension tables: products, zones, bandwidth plans")
    rf.add_argument("action", choices=["create", "show"])

    i = sub.add_parser("ingest", help="run the configured streaming pipelines")
    i.add_argument("--pipeline", action="append", dest="pipelines", help="pipeline name (repeatable; default: all)")
    g = i.add_mutually_exclusive_group()
    g.add_argument("--available-now", action="store_true", help="process what is in Kafka now, then stop")
    g.add_argument("--processing-time", help="micro-batch interval, e.g. '5 seconds' (overrides conf)")
    i.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")

    sub.add_parser("summary", help="rows, files and versions of every configured Delta table")

    al = sub.add_parser("alerts", help="follow the alerts topic (episodes from the detectors, fast-path flags)")
    al.add_argument("action", choices=["tail"])
    al.add_argument("--from-beginning", action="store_true", help="start at the oldest alert kept (default: new ones)")
    al.add_argument("--max", type=int, default=None, help="stop after this many alerts")
    al.add_argument("--timeout", type=float, default=None, help="stop after this many seconds without an alert")
    al.add_argument("--json", action="store_true", help="print each alert as one JSON line")
    al.add_argument("--topic", default="alerts", help="logical topic (default: alerts)")

    q = sub.add_parser("quality", help="data quality: GX validation report with Data Docs, suites, per-batch metrics",
                       description="report: validate tables with their expectation suites (Great Expectations), write "
                                   "Data Docs (HTML) and print a summary; exit code 1 when a `fail` expectation is "
                                   "violated. suite: print a table's suite as GX JSON. metrics: totals per table from "
                                   "the quality-metrics table.")
    q.add_argument("action", choices=["report", "suite", "metrics"])
    q.add_argument("--table", action="append", dest="tables", help="table, e.g. silver.clickstream (repeatable; default: all with a suite)")
    q.add_argument("--since", help="report: only rows with time column >= this (ISO-8601, UTC)")
    q.add_argument("--until", help="report: only rows with time column < this (ISO-8601, UTC)")
    q.add_argument("--time-column", default="event_time", help="report: the column --since/--until apply to (default event_time)")

    qr = sub.add_parser("quarantine", help="quarantined records: reasons, and replay through the current rules",
                        description="replay: run quarantined records again through their pipeline's current transforms "
                                    "and expectations; those that pass move to the table (idempotent, safe to rerun).")
    qr.add_argument("action", choices=["replay", "show"])
    qr.add_argument("--pipeline", action="append", dest="pipelines", help="pipeline (repeatable; default: all with a quarantine)")
    qr.add_argument("--dry-run", action="store_true", help="replay: count what would move, change nothing")
    qr.add_argument("--limit", type=int, default=10, help="show: latest records to print (default 10)")

    rp = sub.add_parser("reprocess", help="rebuild a table or a time range of it with the current code (batch)",
                        description="Rebuild a table, or the rows whose time column is in [--from, --to), from its "
                                    "source table with the current transforms and quality rules, replacing exactly "
                                    "that range in one Delta commit (idempotent: a rerun with no change writes "
                                    "nothing; safe while the streams run). --full replays a Kafka-fed table from the "
                                    "earliest retained offsets into a side table and swaps it in.")
    rp.add_argument("--table", required=True, help="e.g. silver.clickstream, gold.sessions")
    rp.add_argument("--from", dest="start", help="start of the range, ISO-8601 UTC (inclusive)")
    rp.add_argument("--to", dest="end", help="end of the range, ISO-8601 UTC (exclusive)")
    rp.add_argument("--day", help="one UTC day: YYYY-MM-DD, 'yesterday' or 'today' (instead of --from/--to)")
    rp.add_argument("--full", action="store_true", help="replay Kafka from the earliest retained offset (bronze, silver)")
    rp.add_argument("--dry-run", action="store_true", help="compute and compare, change nothing")
    rp.add_argument("--margin", help="source rows read beyond the range on each side, e.g. '2 hours' (default: "
                                     "twice the longest window/gap of the pipeline, at least 1 hour)")
    rp.add_argument("--wait", type=float, default=600, help="--full: seconds to wait for the live stream to pass the "
                                                            "replayed offsets before swapping (default 600)")

    qy = sub.add_parser("query", help="run a named BI query over the lake (latest, or --as-of a version/timestamp)")
    qy.add_argument("name", nargs="?", help="query name; omit (or --list) to list them")
    qy.add_argument("--list", action="store_true", help="list the named queries")
    qy.add_argument("--as-of", help="time travel: a version of the query's first table (e.g. 3) or a timestamp "
                                    "(e.g. 2026-11-25T10:00:00) for every table it reads")
    qy.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    qy.add_argument("--json", action="store_true", help="print rows as JSON lines")
    qy.add_argument("--sql", action="store_true", help="print the query's SQL instead of running it")

    sq = sub.add_parser("sql", help="run Spark SQL over the lake's tables (gold.sessions, ...) and named queries")
    sq.add_argument("statement", help="e.g. \"SELECT * FROM gold.sessions VERSION AS OF 2 LIMIT 5\"")
    sq.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    sq.add_argument("--json", action="store_true", help="print rows as JSON lines")

    hi = sub.add_parser("history", help="a table's Delta versions (for time travel): time, operation, rows")
    hi.add_argument("table", help="e.g. silver.clickstream")
    hi.add_argument("--limit", type=int, default=20, help="versions to print (default 20)")

    st = sub.add_parser("status", help="every query (state, last batch, rates, lag, last error), tables, quarantine")
    st.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS",
                    help="refresh every SECONDS (default 5) until Ctrl-C")
    st.add_argument("--json", action="store_true", help="print one JSON document (per refresh)")

    db = sub.add_parser("dashboard", help="web page of pipeline health, data quality and business views, on 127.0.0.1",
                        description="Reads the lake through the named BI queries every dashboard.refresh_s seconds "
                                    "and serves the page until Ctrl-C. Works while the pipeline runs or after it.")
    db.add_argument("--port", type=int, help="port on 127.0.0.1 (default: dashboard.port, 8050)")
    db.add_argument("--refresh", type=float, metavar="SECONDS", help="read the lake this often (default: "
                    "dashboard.refresh_s)")

    mt = sub.add_parser("maintain", help="OPTIMIZE (Z-ORDER from maintenance.zorder) and VACUUM the tables",
                        description="VACUUM keeps every file a configured stream still has to read, whatever the "
                                    "retention asked for; below maintenance.min_retain_hours it needs --force.")
    mt.add_argument("--table", action="append", dest="tables", help="table to maintain (repeatable; default: all)")
    mt.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip OPTIMIZE")
    mt.add_argument("--no-vacuum", dest="vacuum", action="store_false", help="skip VACUUM")
    mt.add_argument("--retain-hours", type=float, help="VACUUM retention (default: maintenance.retain_hours)")
    mt.add_argument("--force", action="store_true", help="allow a retention below maintenance.min_retain_hours")
    mt.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")

    bn = sub.add_parser("bench", help="benchmark: limit, passthrough, full pipeline, latency, alert paths, soak, "
                                      "quality cost; prints a table and writes a JSON result")
    bn.add_argument("--quick", action="store_true", help="everything small (~4 min): checks the harness, not the machine")
    bn.add_argument("--only", action="append", choices=["preload", "limit", "passthrough", "full", "quality", "latency",
                                                        "alerts", "soak"],
                    help="run only this stage (repeatable; the throughput stages preload the topic first, quality runs full first)")
    bn.add_argument("--events", type=int, help="clickstream events preloaded for the throughput stages (default 2,000,000)")
    bn.add_argument("--latency-rate", type=int, help="events/s of the latency run (default 10,000)")
    bn.add_argument("--latency-seconds", type=float, help="length of the latency run (default 120)")
    bn.add_argument("--soak-rate", type=int, help="events/s of the soak (default 1,000)")
    bn.add_argument("--soak-seconds", type=float, help="length of the soak (default 600)")
    bn.add_argument("--trigger", help="processing-time trigger of the streaming stages (default '1 second'; "
                                      "'config' keeps each pipeline's own)")
    bn.add_argument("--out", type=Path, help="JSON result (default bench/results/kappalake-bench[-quick].json)")
    bn.add_argument("--workspace", type=Path, default=Path(".kappalake/bench"),
                    help="lakes, checkpoints and copies of the run (cleared first; default .kappalake/bench)")

    vf = sub.add_parser("verify", help="check the lake against Kafka: one bronze row per Kafka record, silver + quarantine "
                                       "account for bronze, gold = a batch recomputation, Delta versions readable",
                        description="Run once the streams have caught up (e.g. after ingest --available-now). "
                                    "Exits 1 when a check fails.")
    vf.add_argument("--pipeline", action="append", dest="pipelines", help="check this pipeline's table (repeatable; "
                                                                         "default: all that exist)")
    vf.add_argument("--no-delta", dest="delta", action="store_false", help="skip reading every Delta version")

    ch = sub.add_parser("chaos", help="fault scenarios (SIGKILLs, broker outage, full disk, permissions, maintenance "
                                      "while streaming), each followed by `verify`; prints a table, writes JSON",
                        description="Each scenario gets its own topics and lake under --workdir and runs the "
                                    "streaming job as a separate process. The embedded broker is started if it "
                                    "is not running (and stopped afterwards); an external one is used as it is.")
    ch.add_argument("--scenario", action="append", dest="scenarios", choices=["kills", "broker", "disk_full",
                                                                              "permissions", "maintenance"],
                    help="run only this scenario (repeatable; default: all)")
    ch.add_argument("--topic", action="append", dest="topics", choices=["clickstream", "telemetry"],
                    help="feed and run this topic's bronze -> silver -> gold chain (repeatable; default: both)")
    ch.add_argument("--kills", type=int, default=10, help="SIGKILLs in the kills scenario (default 10)")
    ch.add_argument("--rate", type=float, default=150.0, help="events/s fed to each topic (default 150)")
    ch.add_argument("--faults", type=float, default=0.005, help="rate of each fault kind in the feed (default 0.005)")
    ch.add_argument("--outage", type=float, default=30.0, help="seconds the broker is down (default 30)")
    ch.add_argument("--workdir", type=Path, default=Path(".kappalake/chaos"), help="lakes and logs (cleared first)")
    ch.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"), help="JSON result")

    d = sub.add_parser("demo", help="the main job: broker, producers, ingestion to completion, summary")
    d.add_argument("--events", type=int, default=5000, help="events per topic (default 5000)")
    d.add_argument("--faults", type=float, default=0.005, metavar="RATE",
                   help="rate of each fault kind in the produced events (default 0.005; 0 for clean input)")
    d.add_argument("--minutes", type=float, default=30, help="simulated minutes the events span (default 30)")
    d.add_argument("--pipeline", action="append", dest="pipelines",
                   help="run only this pipeline and what it reads from (repeatable; default: all)")
    d.add_argument("--keep-broker", action="store_true", help="leave the broker running afterwards")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = None
    try:
        cfg = load_config(args.profile, args.conf_dir, args.config, args.overrides)
        if args.command in ("topics", "produce", "alerts"):  # kafka-python only: no stream would wait
            _require_kafka(cfg)
        return COMMANDS[args.command](cfg, args)
    except ConfigError as e:
        print(f"kappalake: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kappalake query --list | head`: the reader left, as with any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush would raise again
        return 141
    except Exception as e:  # noqa: BLE001 - one readable line for known failures, traceback otherwise
        if isinstance(e, KappalakeError):
            print(f"kappalake: {e}", file=sys.stderr)
            return 1
        from kafka.errors import KafkaError

        if isinstance(e, KafkaError) and cfg is not None:
            why = str(e) if str(e).startswith(type(e).__name__) else f"{type(e).__name__}: {e}"
            print(f"kappalake: Kafka at {cfg.bootstrap_servers} did not answer ({why}): {_kafka_advice(cfg)}",
                  file=sys.stderr)
            return 1
        raise


def _kafka_advice(cfg: Config) -> str:
    if cfg.broker.mode == "embedded":
        return "start the embedded broker with `kappalake broker start` (`kappalake broker status` shows it)"
    return ("check kafka.bootstrap_servers, that the cluster is up and reachable from here, and "
            "kafka.security_protocol and its credentials")


def _require_kafka(cfg: Config, connect: bool = False) -> None:
    """Fail at once, naming what to do, when Kafka is not there at start-up: the embedded broker
    not running, or (``connect``) an external cluster that does not answer within 10 s. Streams
    wait ``kafka.outage_wait_s`` only for an outage after they have connected."""
    from kappalake.errors import BrokerError
    from kappalake.ingest.broker import LocalBroker

    if cfg.broker.mode == "embedded" and not LocalBroker(cfg.broker).answers():
        raise BrokerError(f"no Kafka broker answers on {cfg.bootstrap_servers} (broker.mode: embedded): "
                          f"{_kafka_advice(cfg)}")
    if cfg.broker.mode == "external" and connect:
        from kafka import KafkaAdminClient

        from kappalake.ingest.kafka_clients import python_client_kwargs

        kwargs = python_client_kwargs(cfg)  # also proves the security settings and credentials
        kwargs["bootstrap_timeout_ms"] = min(10_000, kwargs["bootstrap_timeout_ms"])
        KafkaAdminClient(**kwargs).close()  # KafkaError -> one line in main()


# -- commands ------------------------------------------------------------------------------

def cmd_config(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "validate":
        from kappalake.pipelines.plan import validate_pipelines

        from kappalake.quality.suites import check_suites

        validate_pipelines(cfg)
        check_suites(cfg)
        print(f"configuration OK (profile {cfg.profile}, {len(cfg.pipelines)} pipelines, {len(cfg.topics)} topics, "
              f"{len(cfg.quality.suites)} expectation suites)")
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
    from kappalake.ingest.producer import produce, progress_printer
    from kappalake.ingest.topics import ensure_topics

    cfg = _with_producer_overrides(cfg, args)
    spec = produce_spec(args)
    ensure_topics(cfg, [args.topic])
    stats = produce(cfg, spec, processes=args.processes,
                    progress=None if args.quiet else progress_printer(args.topic))
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    faults = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.faults.items())) or "none"
    print(f"{args.topic}: {stats.acked:,} of {stats.sent:,} acked, {stats.errors:,} errors, {stats.seconds:.1f} s, "
          f"{stats.rate:,.0f} events/s, {stats.bytes / 2**20:,.1f} MiB, seed {spec.seed}; faults: {faults}")
    if stats.errors:
        print(f"{stats.errors:,} events failed: {stats.last_error}", file=sys.stderr)
        return 1
    return 0


def produce_spec(args: argparse.Namespace) -> "ProduceSpec":
    """The ProduceSpec the ``produce`` flags describe (ConfigError on bad values)."""
    from kappalake.ingest.faults import FaultRates
    from kappalake.ingest.producer import ProduceSpec
    from kappalake.ingest.simulators.base import parse_ms

    rates = {k: getattr(args, f"fault_{k}") if getattr(args, f"fault_{k}") is not None else args.faults for k in FAULT_KINDS}
    try:
        start = parse_ms(args.start) if args.start else None
    except ValueError:
        raise ConfigError(f"--start {args.start!r} is not an ISO-8601 time with zone, e.g. 2026-11-22T08:00:00Z") from None
    if args.processes < 1:
        raise ConfigError("--processes must be >= 1")
    try:
        return ProduceSpec(
            args.topic, count=args.count if args.count is not None or args.duration else 10_000,
            duration=args.duration, rate=args.rate, span=args.span, seed=args.seed if args.seed is not None else int(time.time()),
            start_ms=start, users=args.users, devices=args.devices, people=args.people, diurnal=args.diurnal,
            faults=FaultRates(**rates), scenario=args.scenario)
    except ValueError as e:
        raise ConfigError(f"produce: {e}") from None


def _with_producer_overrides(cfg: Config, args: argparse.Namespace) -> Config:
    changes = {k: v for k, v in {"acks": args.acks, "linger_ms": args.linger_ms, "batch_size": args.batch_size,
                                  "compression": args.compression}.items() if v is not None}
    if not changes:
        return cfg
    if changes.get("acks", "all") != "all":
        changes["enable_idempotence"] = False  # kafka-python: idempotence requires acks=all
    merged = cfg.producer.model_dump() | changes
    try:
        return cfg.model_copy(update={"producer": type(cfg.producer).model_validate(merged)})
    except ValueError as e:
        raise ConfigError(f"producer options: {e}") from None


def cmd_contracts(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest import contracts

    if args.action == "docs":
        text = contracts.markdown()
        if args.output:
            with open(args.output, "w") as f:
                f.write(text)
            print(f"wrote {args.output}")
        else:
            print(text, end="")
        return 0
    if not args.topic:
        raise ConfigError(f"'contracts {args.action}' needs a topic: {', '.join(contracts.topics())}")
    try:
        contracts.schema(args.topic)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if args.action == "show":
        print(json.dumps(contracts.schema(args.topic), indent=2))
    elif args.action == "ddl":
        print(contracts.ddl(args.topic))
    else:
        stream = open(args.file, "rb") if args.file else sys.stdin.buffer
        bad = total = 0
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            total += 1
            try:
                errors = contracts.validation_errors(args.topic, json.loads(line))
            except ValueError as e:  # invalid JSON or UTF-8
                errors = [f"not JSON: {e}"]
            if errors:
                bad += 1
                print(f"line {n}: " + "; ".join(errors))
        print(f"{total - bad:,} of {total:,} events valid against {args.topic} v{contracts.latest_version(args.topic)}")
        return 1 if bad else 0
    return 0


def cmd_reference(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "show":
        from kappalake.ingest.reference import Reference

        ref = Reference(cfg.reference.seed, cfg.reference.products)
        print(f"seed {ref.seed}: {len(ref.products)} products, {len(ref.zones)} zones, "
              f"{len(ref.bandwidth_plans)} bandwidth plans in {len({(p.country, p.city) for p in ref.bandwidth_plans})} cities")
        return 0
    from kappalake.pipelines.reference import write_reference_tables
    from kappalake.session import get_spark

    for table, rows in write_reference_tables(get_spark(cfg), cfg).items():
        print(f"{table}: {rows:,} rows at {cfg.lake.table_path(table)}")
    return 0


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
        _require_kafka(cfg, connect=True)
    spark = get_spark(cfg)
    reports = run_pipelines(spark, cfg, names, trigger=trigger, timeout=args.timeout, on_progress=_print_progress)
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
        tail(cfg, as_json=args.json, topic=args.topic, from_beginning=args.from_beginning, max_messages=args.max,
             timeout_s=args.timeout, out=lambda line: print(line, flush=True))
    except ValueError as e:
        print(f"kappalake: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_quality(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.quality.suites import load_suite

    tables = args.tables or sorted(cfg.quality.suites)
    if args.action == "suite":
        for table in tables:
            suite = load_suite(cfg, table)
            if suite is None:
                raise ConfigError(f"table {table} has no expectation suite; suites: {', '.join(sorted(cfg.quality.suites))}")
            print(json.dumps(suite.to_gx().to_json_dict(), indent=2, default=str))
        return 0
    from kappalake.session import get_spark

    spark = get_spark(cfg)
    if args.action == "metrics":
        print_quality_metrics(spark, cfg)
        return 0
    from kappalake.quality.report import format_report, quality_report

    reports, docs, skipped = quality_report(spark, cfg, args.tables, args.since, args.until, args.time_column)
    print(format_report(reports, docs, skipped))
    return 1 if any(r.failed for r in reports) else 0


def cmd_quarantine(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.pipelines.replay import replay_pipelines, replay_quarantine
    from kappalake.session import get_spark

    names = args.pipelines or replay_pipelines(cfg)
    spark = get_spark(cfg)
    if args.action == "show":
        print_quarantine_reasons(spark, cfg)
        print_latest_quarantined(spark, cfg, names, args.limit)
        return 0
    for name in names:
        r = replay_quarantine(spark, cfg, name, dry_run=args.dry_run)
        verb = "would move" if args.dry_run else "moved"
        print(f"{name}: {r.examined:,} quarantined records replayed; {verb} {r.moved:,} to "
              f"{cfg.pipelines[name].sink.table}, {r.duplicates:,} duplicates of events already there "
              f"{'would be ' if args.dry_run else ''}removed, {r.remaining:,} still failing (kept)"
              + (f"; {r.conflicts:,} conflicting resends not replayed (kept: the table holds their event_id with "
                 f"other content)" if r.conflicts else ""))
    return 0


def cmd_reprocess(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.pipelines.reprocess import parse_time, reprocess_full, reprocess_range, writer_of
    from kappalake.session import get_spark

    from kappalake.pipelines.reprocess import chain_from_kafka

    name = writer_of(cfg, args.table)  # wrong tables and flags fail before Spark starts
    if args.full:
        chain_from_kafka(cfg, name)
    elif cfg.pipelines[name].source.topic is not None:
        raise ConfigError(f"--table {args.table} is written straight from Kafka by {name}: rebuild it with --full "
                          f"(replays the topic from the earliest retained offset)")
    start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    if args.full and (start or end):
        raise ConfigError("--full replays everything Kafka retains: leave out --from/--to (or drop --full)")
    if args.day:
        if start or end or args.full:
            raise ConfigError("--day replaces --from/--to and does not go with --full")
        start, end = day_range(args.day)
    margin = None
    if args.margin:
        from kappalake.pipelines.reprocess import _seconds

        if not _seconds(args.margin):
            raise ConfigError(f"--margin {args.margin!r} is not a duration like '2 hours' or '30 minutes'")
        margin = timedelta(seconds=_seconds(args.margin))
    spark = get_spark(cfg)
    say = lambda line: print(f"  {line}", flush=True)  # noqa: E731
    if args.full:
        report = reprocess_full(spark, cfg, args.table, dry_run=args.dry_run, wait_s=args.wait, progress=say)
    else:
        report = reprocess_range(spark, cfg, args.table, start, end, dry_run=args.dry_run, margin=margin, progress=say)
    print(format_reprocess(report, args.dry_run))
    return 0


def day_range(day: str) -> tuple[datetime, datetime]:
    """[00:00, 24:00) UTC of ``day``: YYYY-MM-DD, 'today' or 'yesterday'."""
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"today": today, "yesterday": today - timedelta(days=1)}
    if day in named:
        start = named[day]
    else:
        try:
            start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise ConfigError(f"--day {day!r}: use YYYY-MM-DD, 'today' or 'yesterday'") from None
    return start, start + timedelta(days=1)


def format_reprocess(r: Any, dry_run: bool) -> str:
    if dry_run:
        outcome = "dry run: nothing written"
    elif r.version is not None:
        outcome = f"now at version {r.version}"
    else:
        outcome = "unchanged: nothing written"
    lines = [f"{r.table} ({r.scope}) from {r.source} by {r.pipeline}: {r.before:,} rows before, {r.after:,} after; "
             f"{r.added:,} new or changed, {r.removed:,} gone; {outcome}"]
    if r.quarantined:
        lines.append(f"  {r.quarantined:,} rows of it quarantined by the current rules")
    lines += [f"  {n}" for n in r.notes]
    lines.append(f"  {r.seconds:.1f} s" + (f", {r.attempts} attempts (concurrent commits)" if r.attempts > 1 else ""))
    return "\n".join(lines)


def cmd_query(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.bi.queries import QUERIES, get_query, query_sql, run_query

    if args.list or not args.name:
        width = max(map(len, QUERIES))
        for q in QUERIES.values():
            print(f"{q.name:<{width}}  {q.description}  [{', '.join(q.tables)}]")
        return 0
    if args.sql:
        print(query_sql(get_query(args.name), args.as_of).strip())
        return 0
    from kappalake.session import get_spark

    print_rows(run_query(get_spark(cfg), cfg, args.name, args.as_of), args.limit, args.json)
    return 0


def cmd_sql(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.bi.queries import register_views
    from kappalake.session import get_spark

    spark = get_spark(cfg)
    register_views(spark, cfg)
    print_rows(spark.sql(args.statement), args.limit, args.json)
    return 0


def cmd_history(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.bi.queries import table_history
    from kappalake.session import get_spark

    print_rows(table_history(get_spark(cfg), cfg, args.table, args.limit), args.limit, False)
    return 0


def print_rows(df: Any, limit: int, as_json: bool) -> None:
    """``limit`` rows of ``df``: an aligned text table, or JSON lines."""
    rows = df.limit(limit + 1).collect()
    shown = rows[:limit]
    if as_json:
        for r in shown:
            print(json.dumps(r.asDict(recursive=True), default=str))
        return
    cells = [[_cell(v) for v in r] for r in shown]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(df.columns)]
    print("  ".join(c.ljust(w) for c, w in zip(df.columns, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths)).rstrip())
    more = " (more not shown; --limit)" if len(rows) > limit else ""
    print(f"({len(shown)} rows{more})")


def _cell(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M:%S}"
    return str(v)


def _numeric(v: str) -> bool:
    return bool(re.fullmatch(r"-?[\d,]+(\.\d+)?(e[+-]?\d+)?", v))


def cmd_status(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ops.status import lake_status, render
    from kappalake.session import get_spark

    spark = get_spark(cfg)
    while True:
        status = lake_status(spark, cfg)
        text = json.dumps(status, default=str) if args.json else render(status)
        if args.watch and not args.json:
            print("\033[2J\033[H", end="")  # clear the terminal
        print(text, flush=True)
        if not args.watch:
            return 0
        time.sleep(args.watch)


def cmd_dashboard(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.dashboard.app import serve
    from kappalake.session import get_spark

    if args.port is not None and not 1024 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: choose a port from 1024 to 65535")
    if args.refresh is not None and args.refresh < 1:
        raise ConfigError(f"--refresh {args.refresh}: read the lake at most once a second (1 or more)")
    serve(get_spark(cfg, app_name=f"{cfg.app_name}-dashboard"), cfg, args.port, args.refresh)
    return 0


def cmd_maintain(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ops.maintenance import maintain_table, maintained_tables
    from kappalake.session import get_spark

    if args.retain_hours is not None and args.retain_hours < 0:
        raise ConfigError("--retain-hours must be 0 or more")
    spark = get_spark(cfg)
    print(f"{'table':<28}{'files before':>13}{'after':>7}  {'optimize':<22}{'vacuum retain h':>16}{'files deleted':>14}"
          f"{'s':>7}")
    for table in maintained_tables(spark, cfg, args.tables):
        r = maintain_table(spark, cfg, table, args.optimize, args.vacuum, args.retain_hours, args.force, args.dry_run)
        retain = "-" if r.vacuum_retain_hours is None else f"{r.vacuum_retain_hours:.2f}"
        print(f"{table:<28}{r.files_before:>13}{r.files_after:>7}  {r.optimized or '-':<22}{retain:>16}"
              f"{r.vacuum_deleted:>14}{r.seconds:>7.1f}")
        for reader in r.readers:
            print(f"      read by {reader.pipeline} from version {reader.version + 1} ({reader.hours:.2f} h old)")
    if args.dry_run:
        print("(dry run: nothing changed; 'files deleted' is what VACUUM would delete)")
    return 0


def cmd_bench(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.bench.harness import Plan, render, run

    plan = Plan.quick() if args.quick else Plan()
    for arg, attr in (("events", "events"), ("latency_rate", "latency_rate"), ("latency_seconds", "latency_s"),
                      ("soak_rate", "soak_rate"), ("soak_seconds", "soak_s")):
        if getattr(args, arg) is not None:
            setattr(plan, attr, getattr(args, arg))
    if args.trigger is not None:
        plan.trigger = None if args.trigger == "config" else args.trigger
    out = args.out or Path("bench/results") / f"kappalake-bench{'-quick' if args.quick else ''}.json"
    result = run(cfg, plan, args.only, args.workspace, out, args.quick)
    print(render(result))
    print(f"result: {out}")
    return 1 if result["errors"] else 0


def cmd_verify(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ops.consistency import format_checks, verify_lake
    from kappalake.pipelines.plan import validate_pipelines
    from kappalake.session import get_spark

    names = validate_pipelines(cfg, args.pipelines) if args.pipelines else None
    checks = verify_lake(get_spark(cfg), cfg, names, delta=args.delta)
    print(format_checks(checks) if checks else "no tables to check yet")
    return 0 if all(c.ok for c in checks) else 1


def cmd_chaos(cfg: Config, args: argparse.Namespace) -> int:
    import shutil
    import signal

    from kappalake.ingest.broker import LocalBroker
    from kappalake.ops.chaos import Chaos, ConfigSource, summary_table, write_results

    source = ConfigSource(args.profile, args.conf_dir, [str(Path(f).resolve()) for f in args.config], args.overrides)
    shutil.rmtree(args.workdir, ignore_errors=True)
    broker = LocalBroker(cfg.broker)
    started_here = cfg.broker.mode == "embedded" and broker.pid() is None
    if cfg.broker.mode == "embedded":
        broker.start()
    # SIGTERM unwinds like Ctrl-C, so the job processes and the broker started here are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    chaos = Chaos(source, args.workdir.resolve(), kills=args.kills, rate=args.rate, faults=args.faults,
                  outage_s=args.outage, topics=args.topics, say=lambda m: print(m, flush=True))
    try:
        results = chaos.run(args.scenarios or ["kills", "broker", "disk_full", "permissions", "maintenance"],
                            done=lambda so_far: write_results(so_far, args.out))
    finally:
        chaos.close()
        if started_here:
            broker.stop()
    print(summary_table(results))
    for r in results:
        for c in r.checks:
            if not c.ok:
                print(f"{r.scenario}: FAIL {c.check} {c.table}: {c.detail}")
        for note in r.notes:
            print(f"{r.scenario}: {note}")
    print(f"results: {args.out}")  # written after each scenario
    return 0 if all(r.ok is not False for r in results) else 1


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest.broker import LocalBroker
    from kappalake.ingest.faults import FaultRates
    from kappalake.ingest.producer import ProduceSpec, produce
    from kappalake.ingest.topics import ensure_topics
    from kappalake.pipelines.reference import write_reference_tables
    from kappalake.pipelines.plan import validate_pipelines, with_upstream
    from kappalake.pipelines.runner import run_pipelines
    from kappalake.session import get_spark

    names = validate_pipelines(cfg, with_upstream(cfg, args.pipelines) if args.pipelines else None)
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
        ensure_topics(cfg)
        print(f"[3/5] simulating {args.events:,} events per topic over the last {args.minutes:g} minutes (sessions "
              f"and funnels; vehicles on routes, badge sensors, the hot-truck scenario), each fault kind at {args.faults:g}")
        # A small world, so that a few thousand events fill the span: sessions finish, zones fill.
        world = {"users": 1000, "devices": 20, "people": 400}
        for i, topic in enumerate(sorted({t for n in names if (t := cfg.pipelines[n].source.topic)})):
            scenario = "hot-truck" if topic == "telemetry" else None  # scripted excursions the alerts must catch
            stats = produce(cfg, ProduceSpec(topic, count=args.events, seed=int(time.time()) + i, scenario=scenario,
                                             span=args.minutes * 60, faults=FaultRates.uniform(args.faults), **world))
            print(f"      {topic}: {stats.acked:,} acked, {stats.errors} errors, {stats.rate:,.0f} events/s, "
                  f"{sum(stats.faults.values()):,} with injected faults")
        print("[4/5] dimension tables from the seeded reference data, then streaming Kafka -> bronze -> "
              "silver + quarantine -> gold (availableNow: everything there is, then stop)")
        spark = get_spark(cfg)
        for table, rows in write_reference_tables(spark, cfg).items():
            print(f"      {table}: {rows:,} rows")
        reports = run_pipelines(spark, cfg, names, trigger=TriggerConf(available_now=True), on_progress=_print_progress)
        for r in reports:
            print(f"      {r.pipeline}: {r.input_rows} new rows in {r.batches} batches, {r.seconds:.1f}s")
        print("[5/5] what landed in each table")
        print_summary(spark, cfg)
        print_quality_metrics(spark, cfg)
        print_quarantine_reasons(spark, cfg)
        print_gold_highlights(spark, cfg)
        print_alerts(spark, cfg)
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


def print_quarantine_reasons(spark: Any, cfg: Config) -> None:
    """Why rows were quarantined, by kind of problem, per quarantine table."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    for table in sorted({p.sink.quarantine for p in cfg.pipelines.values() if p.sink.quarantine}):
        path = cfg.lake.table_path(table)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        kinds = (spark.read.format("delta").load(path)
                 .groupBy(F.substring_index("reason", ":", 1).alias("kind")).count().orderBy(F.desc("count")).collect())
        print(f"{table} reasons: " + (", ".join(f"{r['kind']} {r['count']:,}" for r in kinds) or "none"))


def print_quality_metrics(spark: Any, cfg: Config) -> None:
    """Totals per table from the quality-metrics table: in, passed, warned, dropped, quarantined, top rules."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = cfg.lake.table_path(cfg.quality.metrics_table)
    if not DeltaTable.isDeltaTable(spark, path):
        return
    m = spark.read.format("delta").load(path)
    totals = m.groupBy("table").agg(F.count("*").alias("batches"), *[F.sum(c).alias(c) for c in
                                    ("rows_in", "passed", "warned", "dropped", "quarantined")]).orderBy("table").collect()
    rules = (m.select("table", F.explode("rule_failures").alias("rule", "n"))  # contract codes by kind
             .groupBy("table", F.substring_index("rule", ":", 1).alias("rule")).agg(F.sum("n").alias("n")).collect())
    for t in totals:
        top = sorted(((r["n"], r["rule"]) for r in rules if r["table"] == t["table"]), reverse=True)[:8]
        print(f"{t['table']} quality over {t['batches']} batches: {t['rows_in']:,} in, {t['passed']:,} passed, "
              f"{t['warned']:,} warned, {t['dropped']:,} dropped, {t['quarantined']:,} quarantined"
              + ("; failures: " + ", ".join(f"{r} {n:,}" for n, r in top) if top else ""))


def print_latest_quarantined(spark: Any, cfg: Config, pipelines: list[str], limit: int) -> None:
    """The latest quarantined records of ``pipelines``: where from, why, the payload's start."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    for name in pipelines:
        table = cfg.pipelines[name].sink.quarantine
        path = cfg.lake.table_path(table) if table else None
        if path is None or not DeltaTable.isDeltaTable(spark, path):
            continue
        rows = (spark.read.format("delta").load(path).filter(F.col("pipeline") == name)
                .orderBy(F.desc("quarantined_at"), F.desc("offset")).limit(limit).collect())
        print(f"{table}, latest {len(rows)} of pipeline {name}:")
        for r in rows:
            text = (r["payload_text"] or "")[:70].replace("\n", " ")
            print(f"  {r['topic']}/{r['partition']}@{r['offset']} [{r['stage']}] {r['error_text']}\n      {text}")


def print_gold_highlights(spark: Any, cfg: Config) -> None:
    """A few answers from gold: the latest hour's funnel, busiest zones, viewers, fleet."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    def read(table: str) -> Any:
        path = cfg.lake.table_path(table)
        if table not in cfg.tables() or not DeltaTable.isDeltaTable(spark, path):
            return None
        return spark.read.format("delta").load(path)

    def latest(table: str, column: str) -> Any:
        if (df := read(table)) is None:
            return None
        last = df.agg(F.max(column)).first()[0]
        return None if last is None else df.filter(F.col(column) == last)

    if (funnel := latest("gold.funnel_hourly", "window_start")) is not None:
        t = funnel.agg(*[F.sum(c).alias(c) for c in ("sessions", "viewed_product", "added_to_cart", "checked_out",
                                                        "purchased", "revenue")]).first()
        print(f"funnel, hour from {funnel.first()['window_start']:%H:%M} UTC: {t['sessions']:,} sessions -> "
              f"{t['viewed_product']:,} viewed a product -> {t['added_to_cart']:,} added to cart -> "
              f"{t['checked_out']:,} checked out -> {t['purchased']:,} bought, EUR {t['revenue']:,.2f}")
    if (zones := latest("gold.zone_occupancy", "window_start")) is not None:
        top = zones.orderBy("concentration_rank", "zone_id").limit(3).collect()
        print(f"most concentrated zones, 15 minutes from {top[0]['window_start']:%H:%M} UTC: " + ", ".join(
            f"#{z['concentration_rank']} {z['zone_name']} ({z['visitors']} in)" for z in top))
    if (viewers := read("gold.concurrent_viewers")) is not None:
        peak = viewers.orderBy(F.desc("viewers"), "second").first()
        if peak is not None:
            print(f"peak concurrent viewers: {peak['viewers']} at {peak['second']:%H:%M:%S} UTC")
    if (fleet := latest("gold.fleet_health", "window_start")) is not None:
        t = fleet.agg(*[F.sum(c).alias(c) for c in ("vehicles", "moving", "engine_hot", "cargo_out_of_range",
                                                      "low_fuel")]).first()
        print(f"fleet, minute from {fleet.first()['window_start']:%H:%M} UTC: {t['vehicles']} vehicles reporting, "
              f"{t['moving']} moving, {t['engine_hot']} engine hot, {t['cargo_out_of_range']} cargo out of range, "
              f"{t['low_fuel']} low on fuel")


def print_alerts(spark: Any, cfg: Config) -> None:
    """The alert episodes in ops.alerts and what the alerts topic holds (episodes and fast-path flags)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from kappalake.alerts.tail import follow

    tables = sorted({p.sink.table for p in cfg.pipelines.values() if p.sink.publish or p.sink.notify})
    for table in tables:
        path = cfg.lake.table_path(table)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        df = spark.read.format("delta").load(path)
        opens = df.filter(F.col("event") == "open").alias("o")
        closes = df.filter(F.col("event") == "close").alias("c")
        episodes = (opens.join(closes, "alert_id", "left")
                    .select("o.kind", "o.entity", "o.metric", "o.reason", "o.started_at", "o.value", "c.ended_at",
                            "c.duration_s", "c.peak").orderBy("started_at", "entity").collect())
        print(f"{table}: {len(episodes)} alert episodes" + (":" if episodes else ""))
        for e in episodes[:12]:
            end = (f"closed after {e['duration_s']:.0f} s, peak {e['peak']:g}" if e["ended_at"] is not None
                   else "still open")
            print(f"      {e['started_at']:%H:%M:%S} {e['kind']} {e['entity']} {e['metric']} {e['reason']} "
                  f"(value {e['value']:g}), {end}")
    for topic in sorted({t for p in cfg.pipelines.values() for t in (p.sink.publish, p.sink.topic) if t}):
        kinds: dict[str, int] = {}
        for _key, alert in follow(cfg, topic, from_beginning=True, timeout_s=2.0):
            kind = alert.get("event", "?") if isinstance(alert, dict) else "not JSON"
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"topic {cfg.topic_name(topic)}: {sum(kinds.values()):,} messages (" +
              (", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())) or "none") + ")")


COMMANDS = {
    "config": cmd_config,
    "broker": cmd_broker,
    "topics": cmd_topics,
    "produce": cmd_produce,
    "contracts": cmd_contracts,
    "reference": cmd_reference,
    "ingest": cmd_ingest,
    "summary": cmd_summary,
    "alerts": cmd_alerts,
    "quality": cmd_quality,
    "quarantine": cmd_quarantine,
    "reprocess": cmd_reprocess,
    "query": cmd_query,
    "sql": cmd_sql,
    "history": cmd_history,
    "status": cmd_status,
    "dashboard": cmd_dashboard,
    "maintain": cmd_maintain,
    "demo": cmd_demo,
    "bench": cmd_bench,
    "verify": cmd_verify,
    "chaos": cmd_chaos,
}
