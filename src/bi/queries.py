"""Named BI queries over the gold tables, defined once for Spark SQL, the CLI and notebooks.

Each query is Spark SQL over the lake's logical table names (``{gold.sessions}``). It runs
against the latest snapshot, or ``AS OF`` a Delta version (of its first table) or a
timestamp (of every table it reads). :func:`register_views` also makes each one a
temporary view, so ``SELECT * FROM top_products`` works in any Spark SQL cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from kappalake.config import Config
from kappalake.errors import ConfigError
from kappalake.lake.catalog import register_tables
from kappalake.lake.tables import table_exists

_TABLE = re.compile(r"\{([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\}")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str

    @property
    def tables(self) -> list[str]:
        """The tables the query reads, in order of first use (the first is its main table)."""
        return list(dict.fromkeys(_TABLE.findall(self.sql)))

    def readable(self, registered: Iterable[str]) -> bool:
        """Whether every table the query reads is among ``registered``."""
        return set(self.tables) <= set(registered)


QUERIES = {q.name: q for q in [
    NamedQuery("top_products", "products by revenue over everything in gold.page_minute, with catalog names", """
        SELECT p.product_id, d.name AS product, d.category, SUM(p.views) AS views, SUM(p.add_to_carts) AS add_to_carts,
               SUM(p.purchases) AS purchases, SUM(p.units) AS units, SUM(p.revenue) AS revenue,
               ROUND(SUM(p.add_to_carts) / NULLIF(SUM(p.views), 0), 3) AS view_to_cart
        FROM {gold.page_minute} p LEFT JOIN {dim.products} d ON p.product_id = d.product_id
        WHERE p.product_id IS NOT NULL
        GROUP BY p.product_id, d.name, d.category
        ORDER BY revenue DESC, views DESC, p.product_id"""),
    NamedQuery("product_trends", "demand in the latest sliding hour of gold.product_demand: trend and suggested discount", """
        SELECT window_start, window_end, product_id, category, views, recent_views, add_to_carts, units_sold, revenue,
               trend, discount_pct
        FROM {gold.product_demand}
        WHERE window_start = (SELECT MAX(window_start) FROM {gold.product_demand})
        ORDER BY trend DESC, views DESC, product_id"""),
    NamedQuery("funnel", "the purchase funnel per hour, all apps together", """
        SELECT window_start AS hour, SUM(sessions) AS sessions, SUM(viewed_product) AS viewed_product,
               SUM(added_to_cart) AS added_to_cart, SUM(checked_out) AS checked_out, SUM(purchased) AS purchased,
               ROUND(SUM(purchased) / NULLIF(SUM(sessions), 0), 4) AS conversion_rate, SUM(revenue) AS revenue
        FROM {gold.funnel_hourly}
        GROUP BY window_start ORDER BY hour"""),
    NamedQuery("sessions_by_app", "sessions, conversion and revenue per app and device from gold.sessions", """
        SELECT app, device, COUNT(*) AS sessions, ROUND(AVG(duration_s), 1) AS avg_duration_s,
               ROUND(AVG(events), 1) AS avg_events, ROUND(AVG(CAST(converted AS INT)), 4) AS conversion_rate,
               SUM(revenue) AS revenue
        FROM {gold.sessions}
        GROUP BY app, device ORDER BY sessions DESC, app, device"""),
    NamedQuery("concurrent_viewers", "peak and average concurrent video viewers per minute", """
        SELECT date_trunc('minute', second) AS minute, MAX(viewers) AS peak_viewers,
               ROUND(AVG(viewers), 1) AS avg_viewers, SUM(starts) AS starts, SUM(stalls) AS stalls
        FROM {gold.concurrent_viewers}
        GROUP BY date_trunc('minute', second) ORDER BY minute"""),
    NamedQuery("zone_concentration", "the most concentrated campus zones per 15 minutes (top 3 of each window)", """
        SELECT window_start, concentration_rank AS `rank`, zone_id, zone_name, building, visitors, people, capacity,
               utilisation, entries, exits
        FROM {gold.zone_occupancy}
        WHERE concentration_rank <= 3
        ORDER BY window_start DESC, concentration_rank, zone_id"""),
    NamedQuery("fleet_health", "the fleet in the latest minute of gold.fleet_health, per vehicle type", """
        SELECT window_start, vehicle_type, vehicles, moving, parked, engine_hot, cargo_out_of_range, low_fuel,
               speed_avg_kmh, engine_temp_max_c, bad_road_share
        FROM {gold.fleet_health}
        WHERE window_start = (SELECT MAX(window_start) FROM {gold.fleet_health})
        ORDER BY vehicle_type"""),
    NamedQuery("device_temperatures", "each vehicle's latest minute: temperatures, speed, position", """
        SELECT device_id, vehicle_type, window_start, engine_temp_max_c, cargo_temp_max_c, speed_avg_kmh, fuel_min_pct,
               last_lat, last_lon
        FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY window_start DESC) AS n
              FROM {gold.device_minute})
        WHERE n = 1 ORDER BY engine_temp_max_c DESC NULLS LAST, device_id"""),
    NamedQuery("alert_history", "alert episodes: opened, closed (or still open), peak value", """
        SELECT o.alert_id, o.kind, o.severity, o.entity, o.metric, o.reason, o.started_at, c.ended_at,
               c.duration_s, COALESCE(c.peak, o.value) AS peak, IF(c.alert_id IS NULL, 'open', 'closed') AS status
        FROM (SELECT * FROM {ops.alerts} WHERE event = 'open') o
        LEFT JOIN (SELECT * FROM {ops.alerts} WHERE event = 'close') c ON o.alert_id = c.alert_id
        ORDER BY o.started_at DESC, o.entity"""),
    NamedQuery("quality_by_table", "rows in, passed, warned, dropped and quarantined per table (ops.quality_metrics)", """
        SELECT `table`, COUNT(*) AS batches, SUM(rows_in) AS rows_in, SUM(passed) AS passed, SUM(warned) AS warned,
               SUM(dropped) AS dropped, SUM(quarantined) AS quarantined,
               ROUND(SUM(quarantined) / NULLIF(SUM(rows_in), 0), 4) AS quarantine_rate
        FROM {ops.quality_metrics}
        GROUP BY `table` ORDER BY `table`"""),
    NamedQuery("quality_over_time", "per table and minute: rows in, passed, warned, dropped, quarantined and the rates", """
        SELECT `table`, date_trunc('minute', recorded_at) AS minute, SUM(rows_in) AS rows_in, SUM(passed) AS passed,
               SUM(warned) AS warned, SUM(dropped) AS dropped, SUM(quarantined) AS quarantined,
               ROUND((SUM(passed) + SUM(warned)) / NULLIF(SUM(rows_in), 0), 4) AS pass_rate,
               ROUND(SUM(quarantined) / NULLIF(SUM(rows_in), 0), 4) AS quarantine_rate
        FROM {ops.quality_metrics}
        WHERE rows_in > 0
        GROUP BY `table`, date_trunc('minute', recorded_at) ORDER BY minute, `table`"""),
    NamedQuery("rule_failures", "rows failing each rule (contract code or expectation) per table and minute", """
        SELECT `table`, date_trunc('minute', recorded_at) AS minute, rule, SUM(rows) AS rows
        FROM {ops.quality_metrics} LATERAL VIEW explode(rule_failures) f AS rule, rows
        GROUP BY `table`, date_trunc('minute', recorded_at), rule ORDER BY minute, `table`, rows DESC, rule"""),
    NamedQuery("latest_quarantined", "the newest quarantined records: reason, error, Kafka coordinates and payload", """
        SELECT * FROM (
          SELECT 'quarantine.clickstream' AS `table`, quarantined_at, pipeline, stage, reason, error_text, topic,
                 `partition`, `offset`, kafka_timestamp, payload_text FROM {quarantine.clickstream}
          UNION ALL
          SELECT 'quarantine.telemetry', quarantined_at, pipeline, stage, reason, error_text, topic,
                 `partition`, `offset`, kafka_timestamp, payload_text FROM {quarantine.telemetry})
        ORDER BY quarantined_at DESC, kafka_timestamp DESC, topic, `partition`, `offset` DESC"""),
    NamedQuery("stream_rates", "per query and minute: batches, rows in, input and processing rates, batch duration", """
        SELECT pipeline, date_trunc('minute', at) AS minute, COUNT(*) AS batches, SUM(input_rows) AS input_rows,
               ROUND(AVG(input_rows_per_s), 1) AS input_rows_per_s,
               ROUND(AVG(processed_rows_per_s), 1) AS processed_rows_per_s,
               ROUND(AVG(batch_ms)) AS avg_batch_ms, MAX(batch_ms) AS max_batch_ms
        FROM {ops.stream_metrics}
        WHERE event = 'progress' AND input_rows > 0
        GROUP BY pipeline, date_trunc('minute', at) ORDER BY minute, pipeline"""),
    NamedQuery("consumer_lag", "Kafka consumer lag per query and topic over time, as the job measured it", """
        SELECT pipeline, topic, at, SUM(end_offset) AS end_offset, SUM(committed_offset) AS committed_offset,
               SUM(lag) AS lag
        FROM {ops.consumer_lag}
        GROUP BY pipeline, topic, at ORDER BY at, pipeline, topic"""),
    NamedQuery("zone_heatmap", "visitors of every campus zone per 15-minute window (all zones, for a heat map)", """
        SELECT window_start, zone_id, zone_name, building, visitors, utilisation, concentration_rank AS `rank`
        FROM {gold.zone_occupancy}
        ORDER BY window_start, zone_id"""),
]}


def get_query(name: str) -> NamedQuery:
    if name not in QUERIES:
        raise ConfigError(f"unknown query {name!r}; named queries: {', '.join(QUERIES)}")
    return QUERIES[name]


def as_of_clause(as_of: str | int | None) -> str:
    """``VERSION AS OF n`` for an integer, ``TIMESTAMP AS OF '...'`` for a date/time text, '' for None."""
    if as_of is None:
        return ""
    text = str(as_of).strip()
    if text.isdigit():
        return f" VERSION AS OF {int(text)}"
    if not re.fullmatch(r"[0-9T:.+\- Z]+", text):
        raise ConfigError(f"--as-of {text!r} is neither a table version (e.g. 3) nor a timestamp (e.g. 2026-11-25T10:00:00)")
    return f" TIMESTAMP AS OF '{text.replace('T', ' ').rstrip('Z')}'"


def query_sql(query: NamedQuery, as_of: str | int | None = None) -> str:
    """The query's SQL; with ``as_of`` a version applies to its first table, a timestamp to all."""
    clause = as_of_clause(as_of)
    by_version = clause.startswith(" VERSION")
    first = query.tables[0]

    def table(m: re.Match) -> str:
        name = m.group(1)
        return name + (clause if clause and (not by_version or name == first) else "")

    return _TABLE.sub(table, query.sql)


def run_query(spark: SparkSession, cfg: Config, name: str, as_of: str | int | None = None,
              registered: list[str] | None = None) -> DataFrame:
    """The named query as a DataFrame over the lake (latest, or as of a version or timestamp).
    ``registered``: what :func:`register_tables` returned, to run many queries on one registration."""
    query = get_query(name)
    registered = set(register_tables(spark, cfg.lake, cfg.tables()) if registered is None else registered)
    for table in query.tables:
        if table not in registered:
            path = cfg.lake.table_path(table) if table in cfg.tables() else "(not configured)"
            raise ConfigError(f"query {name} reads {table}, which does not exist yet at {path}: run the pipelines "
                              f"that write it (kappalake demo, or kappalake ingest)")
    return spark.sql(query_sql(query, as_of))


def answers(spark: SparkSession, cfg: Config) -> Callable[[str], DataFrame | None]:
    """``answer(name)``: the named query over the lake, its tables registered once for all the
    answers; None while a table the query reads does not exist."""
    registered = register_tables(spark, cfg.lake, cfg.tables())

    def answer(name: str) -> DataFrame | None:
        return run_query(spark, cfg, name, registered=registered) if get_query(name).readable(registered) else None

    return answer


def register_views(spark: SparkSession, cfg: Config) -> list[str]:
    """Register the lake's tables and every named query whose tables exist as a temporary view."""
    registered = set(register_tables(spark, cfg.lake, cfg.tables()))
    views = []
    for q in QUERIES.values():
        if q.readable(registered):
            spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {q.name} AS {query_sql(q)}")
            views.append(q.name)
    return views


def table_history(spark: SparkSession, cfg: Config, table: str, limit: int = 20) -> DataFrame:
    """Delta history of a lake table: version, time, operation and rows written, newest first."""
    path = cfg.lake.table_path(table)
    if table not in cfg.tables() or not table_exists(spark, path):
        raise ConfigError(f"table {table} does not exist at {path}; tables: {', '.join(cfg.tables())}")
    from pyspark.sql import functions as F

    return (DeltaTable.forPath(spark, path).history(limit)
            .select("version", "timestamp", "operation",
                    F.coalesce(F.col("operationMetrics")["numOutputRows"], F.lit("")).alias("rows_written"),
                    F.coalesce(F.col("operationMetrics")["numTargetRowsDeleted"],
                               F.col("operationMetrics")["numDeletedRows"], F.lit("")).alias("rows_deleted")))
