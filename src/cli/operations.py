"""Operations commands: table maintenance, the benchmark, verify and chaos."""

from __future__ import annotations

import argparse
from pathlib import Path

from kappalake.config import Config
from kappalake.ingest import simulators
from kappalake.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    mt = sub.add_parser("maintain", help="OPTIMIZE (Z-ORDER from maintenance.zorder) and VACUUM the tables",
                        description="VACUUM keeps every file a configured stream still has to read, whatever the "
                                    "retention asked for; below maintenance.min_retain_hours it needs --force.")
    mt.add_argument("--table", action="append", dest="tables", help="table to maintain (repeatable; default: all)")
    mt.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip OPTIMIZE")
    mt.add_argument("--no-vacuum", dest="vacuum", action="store_false", help="skip VACUUM")
    mt.add_argument("--retain-hours", type=float, help="VACUUM retention (default: maintenance.retain_hours)")
    mt.add_argument("--force", action="store_true", help="allow a retention below maintenance.min_retain_hours")
    mt.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    mt.set_defaults(run=cmd_maintain)

    bn = sub.add_parser("bench", help="benchmark: limit, passthrough, full pipeline, bare-Spark floor, latency, one-hop latency, alert "
                                      "paths, sign-up -> offer, soak, quality cost; prints a table and writes a JSON result")
    bn.add_argument("--quick", action="store_true", help="everything small (~4 min): checks the harness, not the machine")
    bn.add_argument("--only", action="append", choices=["preload", "limit", "passthrough", "full", "floor", "quality",
                                                        "latency", "hop", "alerts", "offers", "soak"],
                    help="run only this stage (repeatable; the throughput stages preload the topic first, floor and quality run full first)")
    bn.add_argument("--events", type=int, help="clickstream events preloaded for the throughput stages (default 2,000,000)")
    bn.add_argument("--latency-rate", type=int, help="events/s of the latency run (default 10,000)")
    bn.add_argument("--latency-seconds", type=float, help="length of the latency run (default 120)")
    bn.add_argument("--hop-seconds", type=float, help="length of the one-hop run: a bare Spark Kafka -> Delta stream alone, at the latency rate (default 60)")
    bn.add_argument("--offer-rate", type=int, help="sign-ups/s of the offers run (default 100)")
    bn.add_argument("--offer-seconds", type=float, help="length of the offers run (default 60)")
    bn.add_argument("--soak-rate", type=int, help="events/s of the soak (default 1,000)")
    bn.add_argument("--soak-seconds", type=float, help="length of the soak (default 600)")
    bn.add_argument("--trigger", help="processing-time trigger of the streaming stages (default '1 second'; "
                                      "'config' keeps each pipeline's own)")
    bn.add_argument("--master", help="Spark master to run on, e.g. spark://127.0.0.1:7077 (kappalake cluster start) "
                                     "or local[2] (default: spark.master of the profile)")
    bn.add_argument("--out", type=Path, help="JSON result (default bench/results/kappalake-bench[-quick].json)")
    bn.add_argument("--workspace", type=Path, default=Path(".kappalake/bench"),
                    help="lakes, checkpoints and copies of the run (cleared first; default .kappalake/bench)")
    bn.set_defaults(run=cmd_bench)

    vf = sub.add_parser("verify", help="check the lake against Kafka: one bronze row per Kafka record, silver + quarantine "
                                       "account for bronze, gold = a batch recomputation, Delta versions readable",
                        description="Run once the streams have caught up (e.g. after ingest --available-now). "
                                    "Exits 1 when a check fails.")
    vf.add_argument("--pipeline", action="append", dest="pipelines", help="check this pipeline's table (repeatable; "
                                                                         "default: all that exist)")
    vf.add_argument("--no-delta", dest="delta", action="store_false", help="skip reading every Delta version")
    vf.set_defaults(run=cmd_verify)

    ch = sub.add_parser("chaos", help="fault scenarios (SIGKILLs, broker outage, full disk, permissions, maintenance "
                                      "while streaming), each followed by `verify`; prints a table, writes JSON",
                        description="Each scenario gets its own topics and lake under --workdir and runs the "
                                    "streaming job as a separate process. The embedded broker is started if it "
                                    "is not running (and stopped afterwards); an external one is used as it is.")
    ch.add_argument("--scenario", action="append", dest="scenarios", choices=["kills", "broker", "disk_full",
                                                                              "permissions", "maintenance"],
                    help="run only this scenario (repeatable; default: all)")
    ch.add_argument("--topic", action="append", dest="topics",
                    help="feed and run this topic's bronze -> silver -> gold chain (repeatable; default: every "
                         "configured topic with a simulator)")
    ch.add_argument("--kills", type=int, default=10, help="SIGKILLs in the kills scenario (default 10)")
    ch.add_argument("--rate", type=float, default=150.0, help="events/s fed to each topic (default 150)")
    ch.add_argument("--faults", type=float, default=0.005, help="rate of each fault kind in the feed (default 0.005)")
    ch.add_argument("--outage", type=float, default=30.0, help="seconds the broker is down (default 30)")
    ch.add_argument("--workdir", type=Path, default=Path(".kappalake/chaos"), help="lakes and logs (cleared first)")
    ch.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"), help="JSON result")
    ch.set_defaults(run=cmd_chaos)


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

    if args.master:
        cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"master": args.master})})
    plan = Plan.quick() if args.quick else Plan()
    for arg, attr in (("events", "events"), ("latency_rate", "latency_rate"), ("latency_seconds", "latency_s"),
                      ("hop_seconds", "hop_s"), ("offer_rate", "offer_rate"), ("offer_seconds", "offer_s"), ("soak_rate", "soak_rate"),
                      ("soak_seconds", "soak_s")):
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
    from kappalake.ops.chaos import Chaos, summary_table, write_results
    from kappalake.ops.chaos_job import ConfigSource

    unknown = [t for t in args.topics or [] if t not in simulators.topics() or t not in cfg.topics]
    if unknown:
        known = [t for t in simulators.topics() if t in cfg.topics]
        raise ConfigError(f"chaos --topic {', '.join(unknown)}: not a configured topic with a simulator "
                          f"(those are: {', '.join(known)})")
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
