"""How the CLI prints rows and the demo's summaries."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from kappalake.config import Config


def print_rows(df: Any, limit: int, as_json: bool) -> None:
    """``limit`` rows of the Spark DataFrame ``df``: an aligned text table, or JSON lines."""
    rows = df.limit(limit + 1).collect()
    print_records(df.columns, [r.asDict(recursive=True) for r in rows], limit, as_json)


def print_records(columns: list[str], rows: list[dict[str, Any]], limit: int, as_json: bool) -> None:
    """``limit`` of ``rows`` (dicts by column): an aligned text table, or JSON lines."""
    shown = rows[:limit]
    if as_json:
        for r in shown:
            print(json.dumps(r, default=str))
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in shown]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
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


def print_summary(spark: Any, cfg: Config) -> None:
    from kappalake.lake.tables import summarize_tables

    rows = summarize_tables(spark, cfg.lake, cfg.tables())
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
    from pyspark.sql import functions as F

    from kappalake.lake.tables import read_table

    for table in sorted({p.sink.quarantine for p in cfg.pipelines.values() if p.sink.quarantine}):
        path = cfg.lake.table_path(table)
        if (df := read_table(spark, path)) is None:
            continue
        kinds = (df
                 .groupBy(F.substring_index("reason", ":", 1).alias("kind")).count().orderBy(F.desc("count")).collect())
        print(f"{table} reasons: " + (", ".join(f"{r['kind']} {r['count']:,}" for r in kinds) or "none"))


def _answers(spark: Any, cfg: Config, answer: Any) -> Any:
    from kappalake.bi.queries import answers

    return answer or answers(spark, cfg)


def print_quality_metrics(spark: Any, cfg: Config, answer: Any = None) -> None:
    """Totals per table (the ``quality_by_table`` query) and its most frequent failures by kind
    (``rule_failures``: contract codes grouped by kind, expectation rules by name). ``answer``:
    :func:`kappalake.bi.queries.answers` when the caller prints several summaries."""
    from pyspark.sql import functions as F

    answer = _answers(spark, cfg, answer)
    if (totals := answer("quality_by_table")) is None:
        return
    rules = (answer("rule_failures").groupBy("table", F.substring_index("rule", ":", 1).alias("rule"))
             .agg(F.sum("rows").alias("n")).collect())
    for t in totals.collect():
        top = sorted(((r["n"], r["rule"]) for r in rules if r["table"] == t["table"]), reverse=True)[:8]
        print(f"{t['table']} quality over {t['batches']} batches: {t['rows_in']:,} in, {t['passed']:,} passed, "
              f"{t['warned']:,} warned, {t['dropped']:,} dropped, {t['quarantined']:,} quarantined"
              + ("; failures: " + ", ".join(f"{r} {n:,}" for n, r in top) if top else ""))


def print_latest_quarantined(spark: Any, cfg: Config, pipelines: list[str], limit: int) -> None:
    """The latest quarantined records of ``pipelines``: where from, why, the payload's start."""
    from pyspark.sql import functions as F

    from kappalake.lake.tables import read_table

    for name in pipelines:
        table = cfg.pipelines[name].sink.quarantine
        path = cfg.lake.table_path(table) if table else None
        if path is None or (df := read_table(spark, path)) is None:
            continue
        rows = (df.filter(F.col("pipeline") == name)
                .orderBy(F.desc("quarantined_at"), F.desc("offset")).limit(limit).collect())
        print(f"{table}, latest {len(rows)} of pipeline {name}:")
        for r in rows:
            text = (r["payload_text"] or "")[:70].replace("\n", " ")
            print(f"  {r['topic']}/{r['partition']}@{r['offset']} [{r['stage']}] {r['error_text']}\n      {text}")


def print_gold_highlights(spark: Any, cfg: Config, answer: Any = None) -> None:
    """A few answers of the named BI queries: the latest hour's funnel, the most concentrated zones
    of the latest window, the busiest minute of video, the fleet in its latest minute."""
    from pyspark.sql import functions as F

    answer = _answers(spark, cfg, answer)
    if (funnel := answer("funnel")) is not None and (t := funnel.orderBy(F.desc("hour")).first()) is not None:
        print(f"funnel, hour from {t['hour']:%H:%M} UTC: {t['sessions']:,} sessions -> "
              f"{t['viewed_product']:,} viewed a product -> {t['added_to_cart']:,} added to cart -> "
              f"{t['checked_out']:,} checked out -> {t['purchased']:,} bought, EUR {t['revenue']:,.2f}")
    if (zones := answer("zone_concentration")) is not None and (first := zones.first()) is not None:
        top = zones.filter(F.col("window_start") == first["window_start"]).limit(3).collect()
        print(f"most concentrated zones, 15 minutes from {first['window_start']:%H:%M} UTC: " + ", ".join(
            f"#{z['rank']} {z['zone_name']} ({z['visitors']} in)" for z in top))
    if (viewers := answer("concurrent_viewers")) is not None:
        peak = viewers.orderBy(F.desc("peak_viewers"), "minute").first()
        if peak is not None:
            print(f"peak concurrent viewers: {peak['peak_viewers']} in the minute from {peak['minute']:%H:%M} UTC")
    if (fleet := answer("fleet_health")) is not None:
        t = fleet.agg(F.max("window_start").alias("window_start"), *[F.sum(c).alias(c) for c in (
            "vehicles", "moving", "engine_hot", "cargo_out_of_range", "low_fuel")]).first()
        if t["window_start"] is not None:
            print(f"fleet, minute from {t['window_start']:%H:%M} UTC: {t['vehicles']} vehicles reporting, "
                  f"{t['moving']} moving, {t['engine_hot']} engine hot, {t['cargo_out_of_range']} cargo out of range, "
                  f"{t['low_fuel']} low on fuel")


def print_alerts(spark: Any, cfg: Config, answer: Any = None) -> None:
    """The alert episodes (the ``alert_history`` query) and what the alerts topics hold (episodes and
    fast-path flags)."""
    from kappalake.alerts.tail import follow

    if (history := _answers(spark, cfg, answer)("alert_history")) is not None:
        episodes = history.orderBy("started_at", "entity").collect()
        print(f"ops.alerts: {len(episodes)} alert episodes" + (":" if episodes else ""))
        for e in episodes[:12]:
            end = (f"closed after {e['duration_s']:.0f} s" if e["status"] == "closed" else "still open")
            print(f"      {e['started_at']:%H:%M:%S} {e['kind']} {e['entity']} {e['metric']} {e['reason']}, "
                  f"peak {e['peak']:g}, {end}")
    for topic in sorted({t for p in cfg.pipelines.values() for t in (p.sink.publish, p.sink.topic) if t}):
        kinds: dict[str, int] = {}
        for _key, alert in follow(cfg.kafka_settings, cfg.topic_name(topic), from_beginning=True, timeout_s=2.0):
            kind = alert.get("event", "?") if isinstance(alert, dict) else "not JSON"
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"topic {cfg.topic_name(topic)}: {sum(kinds.values()):,} messages (" +
              (", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())) or "none") + ")")


def print_routes(cfg: Config, examples: int = 3) -> None:
    """What each route topic holds, read back from Kafka as the application would (a few offers
    in full), and the latest-state tables by MERGE, as `kappalake lookup` reads them."""
    from kappalake.alerts.tail import follow
    from kappalake.bi.lookup import lookup
    from kappalake.errors import ConfigError

    routes = [r for p in cfg.pipelines.values() for r in p.sink.routes]
    for topic in sorted({r.topic for r in routes if r.topic}):
        messages = list(follow(cfg.kafka_settings, cfg.topic_name(topic), from_beginning=True, timeout_s=2.0))
        print(f"topic {cfg.topic_name(topic)}: {len(messages):,} messages read back")
        for key, m in messages[:examples]:
            if isinstance(m, dict) and "offered_plans" in m:
                plans = ", ".join(f"{p.get('plan_name')} {p.get('download_mbps')} Mbit/s {p.get('currency')} "
                                  f"{p.get('monthly_price')}" for p in m["offered_plans"]) or "no plan reaches there"
                print(f"      user {key} in {m.get('city')}: {plans} (offer {str(m.get('offer_id'))[:12]}...)")
    for r in routes:
        if r.mode == "merge":
            try:
                rows = lookup(cfg.lake, r.table).num_rows
            except ConfigError:
                continue
            print(f"{r.table}: latest row of {rows:,} {'/'.join(r.keys)} values (kappalake lookup {r.table} "
                  f"{r.keys[0]}=...)")


def print_progress(name: str, prog: dict) -> None:
    rows = prog.get("numInputRows", 0)
    if rows:
        rate = prog.get("processedRowsPerSecond") or 0
        dur = (prog.get("durationMs") or {}).get("triggerExecution", 0)
        print(f"      [{name}] batch {prog['batchId']}: {rows} rows, {dur} ms, {float(rate):,.0f} rows/s", flush=True)
