"""Set-up commands: configuration, the embedded broker, topics, producers, contracts, dimension tables."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from kappalake.config import Config
from kappalake.errors import ConfigError
from kappalake.ingest import simulators
from kappalake.ingest.faults import FAULT_HELP, FAULT_KINDS

if TYPE_CHECKING:
    from kappalake.ingest.producer import ProduceSpec


def add_parsers(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("config", help="show, validate or read the effective configuration")
    c.add_argument("action", choices=["show", "validate", "get"])
    c.add_argument("key", nargs="?", help="dotted key for 'get', e.g. spark.kafka_connector_version")
    c.set_defaults(run=cmd_config)

    b = sub.add_parser("broker", help="the embedded local Kafka broker")
    b.add_argument("action", choices=["fetch", "start", "stop", "status"])
    b.set_defaults(run=cmd_broker)

    cl = sub.add_parser("cluster", help="a local Spark standalone cluster (master and workers, each its own JVM)",
                        description="start is idempotent: it starts what is not running (a killed worker too). "
                                    "Submit to it with ./spark-submit.sh --master spark://127.0.0.1:<cluster.port>.")
    cl.add_argument("action", choices=["start", "stop", "status"])
    cl.set_defaults(run=cmd_cluster)

    t = sub.add_parser("topics", help="create or list the configured topics")
    t.add_argument("action", choices=["create", "list"])
    t.set_defaults(run=cmd_topics)

    pr = sub.add_parser("produce", help="simulate events and send them to a topic (kafka-python)",
                        description="Simulate clickstream or telemetry events and send them, keyed by user_id / "
                                    "device_id. With --rate events are paced so event time follows the wall clock; "
                                    "without it they go as fast as possible, event times ending about now.")
    pr.add_argument("topic", help="a topic with a simulator: clickstream, telemetry, or one a library in the "
                                   "configuration registers")
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
    pr.add_argument("--scenario", default=None,
                    help="a scripted run of the topic's simulator instead of random episodes; telemetry's hot-truck: "
                         "truck-0000 engine hot for "
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
    pr.set_defaults(run=cmd_produce)

    ct = sub.add_parser("contracts", help="event contracts (JSON Schema): show, docs, validate")
    ct.add_argument("action", choices=["show", "ddl", "docs", "validate"])
    ct.add_argument("topic", nargs="?", help="a topic with a contract, e.g. clickstream (show, ddl, validate)")
    ct.add_argument("--file", help="validate: JSON lines file to check (default: stdin)")
    ct.add_argument("--output", help="docs: write here instead of stdout (e.g. docs/contracts.md)")
    ct.set_defaults(run=cmd_contracts)

    rf = sub.add_parser("reference", help="seeded dimension tables: products, zones, bandwidth plans")
    rf.add_argument("action", choices=["create", "show"])
    rf.set_defaults(run=cmd_reference)


def cmd_config(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "validate":
        from kappalake.pipelines.plan import validate_pipelines

        from kappalake.quality.suites import check_suites

        validate_pipelines(cfg)
        check_suites(cfg.quality)
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


def cmd_cluster(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ops.cluster import LocalCluster

    cluster = LocalCluster(cfg.cluster)
    if args.action == "start":
        st = cluster.start()
        c = cfg.cluster
        print(f"Spark standalone cluster: master {st.master_url} (web UI {st.web_ui}, pid {st.master_pid}), "
              f"{len(st.workers)} workers x {c.worker_cores} cores, {c.worker_memory} each; logs in {cluster.dir}")
        print(f"submit: ./spark-submit.sh --master {st.master_url} -- ingest")
    elif args.action == "stop":
        print("cluster stopped" if cluster.stop() else "cluster was not running")
    else:
        st = cluster.status()
        print(json.dumps(st.__dict__, indent=2))
        return 0 if st.running else 3
    return 0


def _require_embedded(cfg: Config) -> None:
    if cfg.broker.mode != "embedded":
        raise ConfigError("broker.mode is external: kappalake does not manage that cluster (set broker.mode: embedded)")


def cmd_topics(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.ingest.topics import admin_client, ensure_topics

    if args.action == "create":
        created = ensure_topics(cfg.kafka_settings, cfg.topic_specs())
        print(f"created: {', '.join(created) or '(none, all exist)'}")
    else:
        admin = admin_client(cfg.kafka_settings)
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
    try:
        simulators.get(args.topic)  # before the topic is created for it
    except KeyError as e:
        raise ConfigError(f"produce: {e.args[0]}") from None
    if args.topic not in cfg.topics:
        raise ConfigError(f"produce: topic {args.topic!r} is not declared under topics "
                          f"(declared: {', '.join(sorted(cfg.topics))})")
    spec = produce_spec(args)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs([args.topic]))
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


def produce_spec(args: argparse.Namespace) -> ProduceSpec:
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
