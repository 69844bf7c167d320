"""`kappalake status`: every query, table and quarantine on one screen, from durable state only
(the metrics the job records, checkpoints, Delta logs, Kafka), so it works from any process."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from kappalake.config import Config
from kappalake.lake.tables import read_table


def _table(spark: SparkSession, cfg: Config, name: str):  # noqa: ANN202
    return read_table(spark, cfg.lake.table_path(name))


def query_status(spark: SparkSession, cfg: Config, lag: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Per configured pipeline: state (running, stopped, failed, silent, never ran), its last
    batch with rows (time, rates, duration), state rows, lag and last error."""
    now = datetime.now(timezone.utc)
    metrics = _table(spark, cfg, cfg.monitoring.metrics_table)
    last: dict[str, dict] = {}
    busy: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    if metrics is not None:
        # one action, so one Delta snapshot: three separate reads could straddle a commit of the
        # job and show the newest batch beside the state of an older event
        newest = lambda when: F.max_by(F.struct(*metrics.columns),  # noqa: E731
                                       F.when(when, F.struct("at", "batch_id")))
        for r in metrics.groupBy("pipeline").agg(
                newest(F.lit(True)).alias("last"),
                newest((F.col("event") == "progress") & (F.col("input_rows") > 0)).alias("busy"),
                newest(F.col("error").isNotNull()).alias("error")).collect():
            for into, col in ((last, "last"), (busy, "busy"), (errors, "error")):
                if r[col] is not None:
                    into[r["pipeline"]] = r[col].asDict()
    out = []
    for name in cfg.pipelines:
        ev = last.get(name)
        if ev is None:
            state = "never ran"
        elif ev["event"] == "terminated":
            state = "failed" if ev["error"] else "stopped"
        elif now - ev["at"].replace(tzinfo=timezone.utc) > timedelta(seconds=cfg.monitoring.stale_after_s):
            state = "silent"  # no event for a while: the job died without a stop event, or is hung
        else:
            state = "running"
        b = busy.get(name) or {}
        err = errors.get(name)
        out.append({
            "pipeline": name, "state": state, "last_event": ev["at"] if ev else None,
            "last_batch": b.get("at"), "batch_id": b.get("batch_id"), "input_rows": b.get("input_rows"),
            "input_rows_per_s": b.get("input_rows_per_s"), "processed_rows_per_s": b.get("processed_rows_per_s"),
            "batch_ms": b.get("batch_ms"), "state_rows": b.get("state_rows"),
            "lag": (lag or {}).get(name), "last_error": (err["error"].splitlines()[0][:300] if err else None),
            "last_error_at": err["at"] if err else None,
        })
    return out


def quarantine_growth(spark: SparkSession, cfg: Config) -> list[dict[str, Any]]:
    """Per table with a quarantine: rows quarantined in all, in the last hour and last 24 hours,
    and the share of rows in (from the per-batch quality metrics)."""
    q = _table(spark, cfg, cfg.quality.metrics_table)
    if q is None:
        return []
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    recent = lambda h: F.col("recorded_at") >= F.lit(now - timedelta(hours=h))  # noqa: E731
    rows = q.groupBy("table").agg(
        F.sum("quarantined").alias("total"), F.sum(F.when(recent(1), F.col("quarantined"))).alias("last_hour"),
        F.sum(F.when(recent(24), F.col("quarantined"))).alias("last_24h"), F.sum("rows_in").alias("rows_in"),
        F.sum(F.when(recent(1), F.col("rows_in"))).alias("rows_in_last_hour")).orderBy("table").collect()
    return [{"table": r["table"], "quarantined": r["total"] or 0, "last_hour": r["last_hour"] or 0,
             "last_24h": r["last_24h"] or 0,
             "share": (r["total"] or 0) / r["rows_in"] if r["rows_in"] else 0.0,
             "share_last_hour": (r["last_hour"] or 0) / r["rows_in_last_hour"] if r["rows_in_last_hour"] else None}
            for r in rows]


def table_stats(cfg: Config) -> list[dict[str, Any]]:
    """Rows, files, bytes and version of every configured table, from the Delta logs' file
    statistics. Read with delta-rs: Spark would replay each table's log in a job of its own
    (about 1-2 s a table, a minute for the demo's 22)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable as RsTable
    from deltalake.exceptions import TableNotFoundError

    out = []
    for table in cfg.tables():
        try:
            dt = RsTable(cfg.lake.table_path(table))
            adds = pa.table(dt.get_add_actions(flatten=True))
        except TableNotFoundError:
            out.append({"table": table, "exists": False, "rows": 0, "files": 0, "bytes": 0, "version": -1})
            continue
        except Exception as e:  # noqa: BLE001 - e.g. object-store settings delta-rs lacks: say so, go on
            out.append({"table": table, "exists": True, "rows": None, "files": None, "bytes": None, "version": None,
                        "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
            continue
        out.append({"table": table, "exists": True, "rows": int(pc.sum(adds["num_records"]).as_py() or 0),
                    "files": adds.num_rows, "bytes": int(pc.sum(adds["size_bytes"]).as_py() or 0),
                    "version": dt.version()})
    return out


def broker_answers(cfg: Config, timeout_s: float = 3.0) -> bool:
    """Whether any bootstrap server accepts a TCP connection (Kafka clients wait a minute to say no)."""
    import socket

    for server in cfg.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


def lake_status(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """Queries, tables and quarantine growth; lag is live when the broker answers."""
    from kappalake.bi.monitor import kafka_lag

    lag: dict[str, int] | None = None
    lag_error = None
    per_partition = None
    try:
        if not broker_answers(cfg):
            raise ConnectionError(f"no Kafka broker answers at {cfg.bootstrap_servers}")
        per_partition = kafka_lag(spark, cfg)
        lag = {} if per_partition.empty else {k: int(v) for k, v in per_partition.groupby("pipeline")["lag"].sum().items()}
    except Exception as e:  # noqa: BLE001 - no broker: everything else still shows
        lag_error = f"{type(e).__name__}: {e}"
    tables = table_stats(cfg)
    return {"at": datetime.now(timezone.utc), "queries": query_status(spark, cfg, lag), "lag_error": lag_error,
            "lag_partitions": [] if per_partition is None else per_partition.to_dict("records"),
            "tables": tables, "quarantine": quarantine_growth(spark, cfg)}


def _age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "-"
    s = (now - at.replace(tzinfo=timezone.utc)).total_seconds()
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def render(status: dict[str, Any]) -> str:
    """The status as text tables."""
    now = status["at"]
    lines = [f"kappalake status at {now:%Y-%m-%d %H:%M:%S} UTC", "",
             f"{'pipeline':<24}{'state':<11}{'last batch':>12}{'rows':>9}{'in/s':>10}{'done/s':>10}{'batch ms':>10}"
             f"{'state rows':>11}{'lag':>9}  last error"]
    for q in status["queries"]:
        def num(v, fmt=",.0f"):  # noqa: ANN001, ANN202
            return "-" if v is None else format(v, fmt)
        err = f"{q['last_error']} ({_age(q['last_error_at'], now)})" if q["last_error"] else ""
        lines.append(f"{q['pipeline']:<24}{q['state']:<11}{_age(q['last_batch'], now):>12}{num(q['input_rows']):>9}"
                     f"{num(q['input_rows_per_s']):>10}{num(q['processed_rows_per_s']):>10}{num(q['batch_ms']):>10}"
                     f"{num(q['state_rows']):>11}{num(q['lag']):>9}  {err}")
    if status["lag_error"]:
        lines.append(f"(lag unavailable: {status['lag_error']})")
    lines += ["", f"{'table':<28}{'rows':>12}{'files':>8}{'MiB':>9}{'version':>9}"]
    for t in status["tables"]:
        if t.get("error"):
            lines.append(f"{t['table']:<28}{'?':>12}  (unreadable here: {t['error']})")
        elif t["exists"]:
            lines.append(f"{t['table']:<28}{t['rows']:>12,}{t['files']:>8}{t['bytes'] / 2**20:>9.2f}{t['version']:>9}")
        else:
            lines.append(f"{t['table']:<28}{'(missing)':>12}")
    if status["quarantine"]:
        lines += ["", f"{'quarantined rows of':<28}{'total':>10}{'last hour':>11}{'last 24h':>10}{'share':>8}"]
        for g in status["quarantine"]:
            lines.append(f"{g['table']:<28}{g['quarantined']:>10,}{g['last_hour']:>11,}{g['last_24h']:>10,}"
                         f"{g['share']:>8.2%}")
    return "\n".join(lines)
