"""What the dashboard shows, read from the lake in one go: a snapshot of pandas frames.

Everything comes from durable state through code the CLI and notebooks use too: the query
status and live Kafka lag of ``kappalake status``, and the named BI queries (health, quality
and business views). A :class:`SnapshotFeed` thread takes a snapshot every
``dashboard.refresh_s`` seconds, so page requests never wait for Spark.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappalake.bi.queries import run_query
from kappalake.config import Config
from kappalake.lake.catalog import register_tables
from kappalake.ops.status import lake_status

log = logging.getLogger("kappalake.dashboard")
_WORKERS = 4


@dataclass
class Snapshot:
    """One reading of the lake. ``frames`` maps a view name to its rows; ``missing`` says why
    a view has none (its table not written yet, or the error reading it)."""

    at: datetime
    seconds: float
    number: int
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    lag_error: str | None = None
    drawn: dict[str, object] = field(default_factory=dict)  # what a consumer made of it (the page's sections)

    def get(self, name: str) -> pd.DataFrame:
        return self.frames.get(name, pd.DataFrame())


def _recent(df: DataFrame, column: str, minutes: int) -> DataFrame:
    """Rows of ``df`` at most ``minutes`` before its newest ``column`` value (not the wall
    clock's: a lake looked at after its job stopped still shows its last hours)."""
    newest = df.agg(F.max(column)).first()[0]
    return df if newest is None else df.filter(F.col(column) >= F.lit(newest) - F.expr(f"INTERVAL {minutes} MINUTES"))


def _views(cfg: Config) -> dict[str, Callable[[DataFrame], DataFrame]]:
    """Named query -> how much of it the page needs."""
    d = cfg.dashboard
    hist = d.history_minutes
    return {
        # health
        "stream_rates": lambda df: _recent(df, "minute", hist),
        "consumer_lag": lambda df: _recent(df, "at", hist),
        # quality
        "quality_by_table": lambda df: df,
        "quality_over_time": lambda df: _recent(df, "minute", hist),
        "rule_failures": lambda df: _recent(df, "minute", hist),
        "latest_quarantined": lambda df: df.limit(d.rows),
        # business
        "top_products": lambda df: df.limit(d.rows),
        "funnel": lambda df: _recent(df, "hour", max(hist, 24 * 60)),
        "concurrent_viewers": lambda df: _recent(df, "minute", hist),
        "zone_concentration": lambda df: df.filter(F.col("window_start").isin(
            [r[0] for r in df.select("window_start").distinct().orderBy(F.desc("window_start")).limit(4).collect()])),
        "zone_heatmap": lambda df: _recent(df, "window_start", hist),
        "fleet_health": lambda df: df,
        "device_temperatures": lambda df: df,
        "alert_history": lambda df: df.limit(200),
    }


def take_snapshot(spark: SparkSession, cfg: Config, number: int = 0) -> Snapshot:
    """Read every view of the page from the lake once."""
    started = time.monotonic()
    snap = Snapshot(at=datetime.now(timezone.utc), seconds=0.0, number=number)
    registered = register_tables(spark, cfg.lake, cfg.tables())

    def read(name: str, shape: Callable[[DataFrame], DataFrame]) -> None:
        try:
            snap.frames[name] = shape(run_query(spark, cfg, name, registered=registered)).toPandas()
        except Exception as e:  # noqa: BLE001 - one view failing leaves the others on the page
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            snap.missing[name] = first[:300]

    # Each view is a few small Spark jobs whose time is mostly planning and Delta log reads,
    # not CPU: run side by side, the page's 14 views take a third of the time they take in turn.
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="kappalake-dashboard-view") as pool:
        status = pool.submit(lake_status, spark, cfg)
        for future in [pool.submit(read, name, shape) for name, shape in _views(cfg).items()]:
            future.result()
        status = status.result()
    snap.frames["queries"] = pd.DataFrame(status["queries"])
    snap.frames["tables"] = pd.DataFrame(status["tables"])
    snap.frames["lag"] = pd.DataFrame(status["lag_partitions"],
                                      columns=["pipeline", "topic", "partition", "end_offset", "processed", "lag", "at"])
    snap.lag_error = status["lag_error"]
    _read_latest_state(cfg, snap)
    snap.seconds = time.monotonic() - started
    return snap


def _read_latest_state(cfg: Config, snap: Snapshot) -> None:
    """The latest-state tables (merge routes, e.g. serving.vehicle_latest) read with delta-rs, newest
    first, as ``latest:<table>`` frames; nested columns (lists of plans) left out of the page."""
    import pyarrow as pa

    from kappalake.bi.lookup import lookup

    for route in (r for p in cfg.pipelines.values() for r in p.sink.routes if r.mode == "merge"):
        name = f"latest:{route.table}"
        try:
            table = lookup(cfg.lake, route.table)
        except Exception as e:  # noqa: BLE001 - not written yet, or unreadable: said on the page
            snap.missing[name] = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            continue
        flat = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
        newest = table.select(flat).sort_by([(route.latest_by, "descending")]).slice(0, cfg.dashboard.rows)
        snap.frames[name] = newest.to_pandas()


class SnapshotFeed:
    """Takes a snapshot now and then every ``refresh_s`` seconds on a daemon thread."""

    def __init__(self, spark: SparkSession, cfg: Config, refresh_s: float | None = None,
                 prepare: Callable[[Snapshot], None] | None = None) -> None:
        self.spark, self.cfg = spark, cfg
        self.prepare = prepare  # run on each snapshot before it is published (e.g. drawing the page)
        self.refresh_s = refresh_s or cfg.dashboard.refresh_s
        self._latest: Snapshot | None = None
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kappalake-dashboard-feed", daemon=True)

    def start(self) -> "SnapshotFeed":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def latest(self) -> Snapshot | None:
        return self._latest

    @property
    def error(self) -> str | None:
        """Why the last snapshot failed, if it did (the page keeps showing the one before)."""
        return self._error

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            started = time.monotonic()
            number += 1
            try:
                snap = take_snapshot(self.spark, self.cfg, number)
                if self.prepare is not None:
                    self.prepare(snap)
                self._latest, self._error = snap, None
                log.info("snapshot %d read in %.1f s", number, snap.seconds)
            except Exception as e:  # noqa: BLE001 - e.g. a table rewritten mid-read: try again next time
                self._error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
                log.warning("snapshot %d failed: %s", number, self._error)
            self._stop.wait(max(1.0, self.refresh_s - (time.monotonic() - started)))
