"""Data-quality commands: GX reports and metrics, the quarantine and its replay, reprocessing."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from kappalake.cli.render import print_latest_quarantined, print_quality_metrics, print_quarantine_reasons
from kappalake.config import Config
from kappalake.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    q.set_defaults(run=cmd_quality)

    qr = sub.add_parser("quarantine", help="quarantined records: reasons, and replay through the current rules",
                        description="replay: run quarantined records again through their pipeline's current transforms "
                                    "and expectations; those that pass move to the table (idempotent, safe to rerun).")
    qr.add_argument("action", choices=["replay", "show"])
    qr.add_argument("--pipeline", action="append", dest="pipelines", help="pipeline (repeatable; default: all with a quarantine)")
    qr.add_argument("--dry-run", action="store_true", help="replay: count what would move, change nothing")
    qr.add_argument("--limit", type=int, default=10, help="show: latest records to print (default 10)")
    qr.set_defaults(run=cmd_quarantine)

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
    rp.set_defaults(run=cmd_reprocess)


def cmd_quality(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.quality.suites import load_suite

    tables = args.tables or sorted(cfg.quality.suites)
    if args.action == "suite":
        for table in tables:
            suite = load_suite(cfg.quality, table)
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

    reports, docs, skipped = quality_report(spark, cfg.quality, cfg.lake, args.tables, args.since, args.until, args.time_column)
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
