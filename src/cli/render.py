"""How the CLI prints rows and the demo's summaries."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from kappalake.config import Config


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


def print_progress(name: str, prog: dict) -> None:
    rows = prog.get("numInputRows", 0)
    if rows:
        rate = prog.get("processedRowsPerSecond") or 0
        dur = (prog.get("durationMs") or {}).get("triggerExecution", 0)
        print(f"      [{name}] batch {prog['batchId']}: {rows} rows, {dur} ms, {float(rate):,.0f} rows/s", flush=True)
