"""Commands that read the lake: named queries, Spark SQL, table history, status, the dashboard."""

from __future__ import annotations

import argparse
import json
import time

from kappalake.cli.render import print_rows
from kappalake.config import Config
from kappalake.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    qy = sub.add_parser("query", help="run a named BI query over the lake (latest, or --as-of a version/timestamp)")
    qy.add_argument("name", nargs="?", help="query name; omit (or --list) to list them")
    qy.add_argument("--list", action="store_true", help="list the named queries")
    qy.add_argument("--as-of", help="time travel: a version of the query's first table (e.g. 3) or a timestamp "
                                    "(e.g. 2026-11-25T10:00:00) for every table it reads")
    qy.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    qy.add_argument("--json", action="store_true", help="print rows as JSON lines")
    qy.add_argument("--sql", action="store_true", help="print the query's SQL instead of running it")
    qy.set_defaults(run=cmd_query)

    sq = sub.add_parser("sql", help="run Spark SQL over the lake's tables (gold.sessions, ...) and named queries")
    sq.add_argument("statement", help="e.g. \"SELECT * FROM gold.sessions VERSION AS OF 2 LIMIT 5\"")
    sq.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    sq.add_argument("--json", action="store_true", help="print rows as JSON lines")
    sq.set_defaults(run=cmd_sql)

    lk = sub.add_parser("lookup", help="rows of a latest-state table by key, read without Spark (e.g. "
                                       "serving.vehicle_latest device_id=truck-0001)")
    lk.add_argument("table", help="e.g. serving.vehicle_latest, serving.latest_offers")
    lk.add_argument("where", nargs="*", metavar="COLUMN=VALUE", help="equality filters (all must hold)")
    lk.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    lk.add_argument("--json", action="store_true", help="print rows as JSON lines")
    lk.set_defaults(run=cmd_lookup)

    hi = sub.add_parser("history", help="a table's Delta versions (for time travel): time, operation, rows")
    hi.add_argument("table", help="e.g. silver.clickstream")
    hi.add_argument("--limit", type=int, default=20, help="versions to print (default 20)")
    hi.set_defaults(run=cmd_history)

    st = sub.add_parser("status", help="every query (state, last batch, rates, lag, last error), tables, quarantine")
    st.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS",
                    help="refresh every SECONDS (default 5) until Ctrl-C")
    st.add_argument("--json", action="store_true", help="print one JSON document (per refresh)")
    st.set_defaults(run=cmd_status)

    db = sub.add_parser("dashboard", help="web page of pipeline health, data quality and business views, on 127.0.0.1",
                        description="Reads the lake through the named BI queries every dashboard.refresh_s seconds "
                                    "and serves the page until Ctrl-C. Works while the pipeline runs or after it.")
    db.add_argument("--port", type=int, help="port on 127.0.0.1 (default: dashboard.port, 8050)")
    db.add_argument("--refresh", type=float, metavar="SECONDS", help="read the lake this often (default: "
                    "dashboard.refresh_s)")
    db.set_defaults(run=cmd_dashboard)


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


def cmd_lookup(cfg: Config, args: argparse.Namespace) -> int:
    from kappalake.bi.lookup import lookup, parse_where
    from kappalake.cli.render import print_records

    if args.table not in cfg.tables():
        raise ConfigError(f"unknown table {args.table!r}; tables: {', '.join(cfg.tables())}")
    rows = lookup(cfg.lake, args.table, parse_where(args.where), args.limit + 1)
    print_records(rows.column_names, rows.to_pylist(), args.limit, args.json)
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
