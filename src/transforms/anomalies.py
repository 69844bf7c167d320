"""Anomaly detectors: silver rows in, alert events (open/close) out; streaming or batch alike.

Stateful detectors run one :class:`~kappalake.transforms.episodes.Episodes` machine per key
and metric. On a stream (``applyInPandasWithState``) a key's readings wait in its state until
the watermark (``lateness`` behind the newest event) passes them, then go through the machine
in event-time order: out-of-order and late readings within ``lateness`` give exactly the
result of sorted input; readings later than that are dropped, as Spark's aggregations drop
them. An event-time timeout wakes a key that receives nothing, so silence closes its alert and
frees its state. On a static DataFrame (``applyInPandas``) the same function runs over each
key's history, with the watermark the stream would have reached (newest event - lateness).

- :func:`temperature_anomalies`: engine/cargo temperature outside the static band or the
  device's rolling baseline for at least ``min_duration`` of event time.
- :func:`rate_anomalies`: error and buffering rates per app and page area over a sliding
  ``window`` (advanced every ``slide``) above a threshold.
- :func:`hard_limit_flags`: the continuous-mode fast path, map/filter only: raw Kafka
  readings over hard limits -> one JSON message each, no state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from kappalake.ingest import contracts
from kappalake.transforms.episodes import EpisodeRules, Episodes
from kappalake.transforms.windows import interval_seconds

# What the Python function returns per alert event (times as epoch ms, converted in Spark).
_RAW_EVENT = ("alert_id string, event string, kind string, severity string, entity string, metric string, "
              "reason string, started_ms long, event_ms long, ended_ms long, duration_s double, value double, "
              "peak double, low double, high double, readings int")
_EVENT_FIELDS = [f.split()[0] for f in _RAW_EVENT.split(", ")]
_STATE = "machine string"


def alert_columns() -> list[Column]:
    """The alert event schema (``ops.alerts``), from the raw rows of the detectors."""
    ts = F.timestamp_millis
    return [F.col("alert_id"), F.col("event"), F.col("kind"), F.col("severity"), F.col("entity"), F.col("metric"),
            F.col("reason"), ts("started_ms").alias("started_at"), ts("event_ms").alias("event_time"),
            ts("ended_ms").alias("ended_at"), F.col("duration_s"), F.col("value"), F.col("peak"), F.col("low"),
            F.col("high"), F.col("readings"), F.current_timestamp().alias("detected_at")]


# -- temperatures -----------------------------------------------------------------------------

DEFAULT_METRICS: dict[str, dict[str, Any]] = {
    "engine_temp_c": {"high": 100.0, "min_std": 2.5},
    "cargo_temp_c": {"low": 1.0, "high": 7.0, "vehicle_types": ["reefer_truck"], "min_std": 0.5},
}
_METRIC_KEYS = {"low", "high", "vehicle_types", "min_std"}


def temperature_anomalies(df: DataFrame, min_duration: str = "10 seconds", lateness: str = "5 seconds",
                          idle_timeout: str = "5 minutes", metrics: dict[str, dict[str, Any]] | None = None,
                          baseline_k: float | None = 4.0, baseline_alpha: float = 0.05, baseline_min_samples: int = 30,
                          baseline_reset: str | None = "10 minutes", severity: str = "critical") -> DataFrame:
    """Per vehicle and metric, one alert per episode of readings outside the normal band that
    lasts ``min_duration`` (open when it does, close when the value is back or the vehicle
    is silent for ``idle_timeout``). ``metrics``: column -> {low, high, vehicle_types (the
    static band applies to these only), min_std (floor of the baseline's deviation)}; the
    baseline (``baseline_k`` deviations of an EWMA, ``null`` to switch it off) applies to all;
    a deviation from the baseline alone that lasts ``baseline_reset`` becomes the new normal."""
    metrics = _check_metrics(metrics if metrics is not None else DEFAULT_METRICS, df.columns)
    rules = temperature_rules(metrics, min_duration, idle_timeout, baseline_k, baseline_alpha, baseline_min_samples,
                              baseline_reset, severity)
    lateness_ms = _ms(lateness, "lateness")
    df = df.withWatermark("event_time", lateness) if df.isStreaming else df
    vehicles = df.filter(F.col("device_kind") == "vehicle")
    cols = [F.unix_millis("event_time").alias("t")]
    for m, spec in metrics.items():
        applies = F.col("vehicle_type").isin(*spec["vehicle_types"]) if spec.get("vehicle_types") else F.lit(True)
        cols += [F.col(m).cast("double").alias(m),
                 F.when(applies, F.lit(spec.get("low"))).cast("double").alias(f"{m}__low"),
                 F.when(applies, F.lit(spec.get("high"))).cast("double").alias(f"{m}__high")]
    readings = vehicles.select("device_id", "event_time", *cols)
    return _run_keyed(df, readings, ["device_id"], reading_step(rules), lateness_ms)


def temperature_rules(metrics: dict[str, dict[str, Any]], min_duration: str = "10 seconds",
                      idle_timeout: str = "5 minutes", baseline_k: float | None = 4.0, baseline_alpha: float = 0.05,
                      baseline_min_samples: int = 30, baseline_reset: str | None = "10 minutes",
                      severity: str = "critical") -> dict[str, EpisodeRules]:
    """The episode rules of each temperature metric (see :func:`temperature_anomalies`)."""
    reset_ms = _ms(baseline_reset, "baseline_reset") if baseline_reset is not None else None
    if baseline_k is not None:
        if baseline_k <= 0 or baseline_min_samples < 2 or not 0 < baseline_alpha < 1:
            raise ValueError("the baseline needs baseline_k > 0, baseline_min_samples >= 2 and 0 < baseline_alpha < 1 "
                             "(or baseline_k: null to switch it off)")
        flat = [m for m, spec in metrics.items() if not float(spec.get("min_std", 0.0)) > 0]
        if flat:
            raise ValueError(f"metrics.{flat[0]}.min_std must be > 0 with a baseline: the smallest deviation that "
                             "counts, in the metric's unit (a sensor repeating one value has none)")
    return {m: EpisodeRules("temperature", m, _ms(min_duration, "min_duration"), _ms(idle_timeout, "idle_timeout"),
                            baseline_k, baseline_alpha, baseline_min_samples, float(spec.get("min_std", 0.0)),
                            reset_ms, severity)
            for m, spec in metrics.items()}


def reading_step(rules: dict[str, EpisodeRules]) -> "Step":
    """Per-vehicle logic: rows ``t`` plus ``<metric>``, ``<metric>__low``, ``<metric>__high`` per metric."""
    metrics = list(rules)

    def add(st: dict, pdf: pd.DataFrame, wm: int) -> None:
        pdf = pdf[pdf["t"] >= wm]  # later than the lateness allowance: dropped, as aggregations drop it
        st.setdefault("p", []).extend(pdf[["t", *[c for m in metrics for c in (m, f"{m}__low", f"{m}__high")]]]
                                      .astype(object).where(pdf.notna(), None).values.tolist())

    def advance(st: dict, entity: str, wm: int) -> list[dict]:
        pending = st.get("p", [])
        sealed = sorted((r for r in pending if r[0] < wm), key=lambda r: (r[0], [x if x is not None else -1e308 for x in r[1:]]))
        st["p"] = [r for r in pending if r[0] >= wm]
        machines = {m: Episodes(rules[m], entity, st.setdefault("m", {}).get(m)) for m in metrics}
        out: list[dict] = []
        for r in sealed:
            for i, m in enumerate(metrics):
                value = r[1 + 3 * i]
                if value is not None:
                    out += machines[m].feed(int(r[0]), float(value), r[2 + 3 * i], r[3 + 3 * i])
        for m, machine in machines.items():
            last = machine.state["last"]
            if last is not None and not st["p"] and wm > last + rules[m].idle_ms:
                out += machine.expire(last + rules[m].idle_ms)
        st["m"] = {m: machine.state for m, machine in machines.items() if not machine.empty}
        return out

    def next_wakeup(st: dict) -> int | None:
        if st.get("p"):
            return min(r[0] for r in st["p"])
        lasts = [ms["last"] + rules[m].idle_ms for m, ms in st.get("m", {}).items() if ms["last"] is not None]
        return min(lasts) if lasts else None

    return Step(add, advance, next_wakeup)


def _check_metrics(metrics: Any, columns: list[str]) -> dict[str, dict[str, Any]]:
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("metrics must map metric columns to {low, high, vehicle_types, min_std}")
    for m, spec in metrics.items():
        if m not in columns:
            raise ValueError(f"metrics.{m}: no such column; columns: {', '.join(columns)}")
        if not isinstance(spec, dict) or set(spec) - _METRIC_KEYS:
            raise ValueError(f"metrics.{m} takes {', '.join(sorted(_METRIC_KEYS))}")
        lo, hi = spec.get("low"), spec.get("high")
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"metrics.{m}: low {lo} must be below high {hi}")
    return metrics


# -- rates --------------------------------------------------------------------------------------

def rate_anomalies(df: DataFrame, window: str = "5 minutes", slide: str = "30 seconds", lateness: str = "30 seconds",
                   error_rate_max: float = 0.03, buffering_rate_max: float = 0.5, min_events: int = 100,
                   by: list[str] | None = None, severity: str = "warning") -> DataFrame:
    """Per app and page area (``/checkout``, ``/watch``...; ``by`` to change), the error rate
    (errors / events) and buffering rate (stalls / playback events) over the last ``window``,
    every ``slide``; one alert per episode above ``error_rate_max`` / ``buffering_rate_max``.
    Rates from fewer than ``min_events`` events are not judged (and close an open alert)."""
    by = by or ["app", "area"]
    step = rate_step(window, slide, error_rate_max, buffering_rate_max, min_events, severity)
    lateness_ms = _ms(lateness, "lateness")
    df = df.withWatermark("event_time", lateness) if df.isStreaming else df
    with_area = df.withColumn("area", F.regexp_extract("page", r"^(/[^/]*)", 1))
    unknown = [c for c in by if c not in with_area.columns]
    if unknown:
        raise ValueError(f"by: no column {', '.join(unknown)}")
    kind = F.col("event_type")
    events = with_area.select(
        *by, "event_time", F.unix_millis("event_time").alias("t"),
        (kind == "error").cast("int").alias("errors"),
        (kind == "buffering").cast("int").alias("buffering"),
        kind.isin("video_play", "buffering").cast("int").alias("playback"))
    return _run_keyed(df, events, by, step, lateness_ms)


def rate_step(window: str = "5 minutes", slide: str = "30 seconds", error_rate_max: float = 0.03,
              buffering_rate_max: float = 0.5, min_events: int = 100, severity: str = "warning") -> "Step":
    """The per-area logic of :func:`rate_anomalies` for these parameters (checked here)."""
    window_ms, slide_ms = _ms(window, "window"), _ms(slide, "slide")
    if window_ms % slide_ms:
        raise ValueError(f"window {window!r} must be a whole number of slides ({slide!r})")
    for name, v in (("error_rate_max", error_rate_max), ("buffering_rate_max", buffering_rate_max)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must be a rate between 0 and 1 (got {v})")
    if min_events < 1:
        raise ValueError(f"min_events must be >= 1 (got {min_events}): a rate needs events to divide by")
    rules = {"error_rate": EpisodeRules("error_rate", "error_rate", 0, window_ms, severity=severity),
             "buffering_rate": EpisodeRules("buffering_rate", "buffering_rate", 0, window_ms, severity=severity)}
    highs = {"error_rate": error_rate_max, "buffering_rate": buffering_rate_max}
    return bucket_step(rules, highs, window_ms, slide_ms, min_events)


def bucket_step(rules: dict[str, EpisodeRules], highs: dict[str, float], window_ms: int, slide_ms: int,
                min_events: int) -> "Step":
    """Per-area logic: rows ``t``, ``errors``, ``buffering``, ``playback`` (0/1) summed per slide."""
    def add(st: dict, pdf: pd.DataFrame, wm: int) -> None:
        pdf = pdf[pdf["t"] >= wm]
        if pdf.empty:
            return
        sums = pdf.assign(b=pdf["t"] // slide_ms * slide_ms).groupby("b")[["errors", "buffering", "playback"]].agg(
            ["sum", "count"])
        pending = st.setdefault("p", {})
        for b, row in sums.iterrows():
            cur = pending.setdefault(str(int(b)), [0, 0, 0, 0])
            cur[0] += int(row[("errors", "count")])
            cur[1] += int(row[("errors", "sum")])
            cur[2] += int(row[("buffering", "sum")])
            cur[3] += int(row[("playback", "sum")])

    def advance(st: dict, entity: str, wm: int) -> list[dict]:
        pending: dict[str, list[int]] = st.setdefault("p", {})
        ring: list[list[int]] = st.setdefault("r", [])
        machines = {m: Episodes(rules[m], entity, st.setdefault("m", {}).get(m)) for m in rules}
        nxt = st.get("n")
        out: list[dict] = []
        while True:
            if nxt is None or (not any(x[1] for x in ring) and not _open(machines)):
                # Nothing in the window and no alert open: jump to the next bucket with events.
                nxt = min((int(b) for b in pending), default=None)
                ring.clear()
                if nxt is None:
                    break
            if nxt + slide_ms > wm:
                break
            counts = pending.pop(str(nxt), [0, 0, 0, 0])
            ring.append([nxt, *counts])
            end = nxt + slide_ms
            ring[:] = [x for x in ring if x[0] >= end - window_ms]
            events, errors, stalls, playback = (sum(x[i] for x in ring) for i in range(1, 5))
            rates = {"error_rate": errors / events if events >= min_events else None,
                     "buffering_rate": stalls / playback if playback >= min_events else None}
            for m, machine in machines.items():
                if rates[m] is not None or not machine.empty:
                    out += machine.feed(end, rates[m], None, highs[m])
            nxt = end
        st["n"] = nxt
        st["m"] = {m: machine.state for m, machine in machines.items() if not machine.empty}
        return out

    def next_wakeup(st: dict) -> int | None:
        if st.get("n") is not None and (any(x[1] for x in st.get("r", [])) or _open_state(st)):
            return st["n"] + slide_ms - 1  # the next bucket is complete once the watermark reaches its end
        starts = [int(b) for b in st.get("p", {})]
        return min(starts) + slide_ms - 1 if starts else None

    return Step(add, advance, next_wakeup)


def _open(machines: dict[str, Episodes]) -> bool:
    return any(m.state["ep"] is not None for m in machines.values())


def _open_state(st: dict) -> bool:
    return any(ms.get("ep") is not None for ms in st.get("m", {}).values())


# -- running a step per key, streaming or batch --------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One detector's per-key logic: ``add`` new rows to the state, ``advance`` the state to a
    watermark (returning alert events), and when to wake up next (event time, ms)."""

    add: Callable[[dict, pd.DataFrame, int], None]
    advance: Callable[[dict, str, int], list[dict]]
    next_wakeup: Callable[[dict], int | None]


def _events_frame(events: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(events, columns=_EVENT_FIELDS).astype({"readings": "int32"})


def _run_keyed(source: DataFrame, rows: DataFrame, keys: list[str], step: Step, lateness_ms: int) -> DataFrame:
    """Group ``rows`` by ``keys`` and run ``step`` per key: with state on a stream, over each
    key's whole history (and the stream's final watermark) on a static DataFrame."""
    raw = StructType.fromDDL(_RAW_EVENT)
    cols = [c for c in rows.columns if c != "event_time"]

    if rows.isStreaming:
        from pyspark.sql.streaming.state import GroupStateTimeout

        def stateful(key: tuple, pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
            st = json.loads(state.get[0]) if state.exists else {}
            wm = state.getCurrentWatermarkMs()
            for pdf in pdfs:
                step.add(st, pdf, wm)
            events = step.advance(st, ":".join(map(str, key)), wm)
            wake = step.next_wakeup(st)
            if wake is None:
                state.remove()
            else:
                state.update((json.dumps(st, separators=(",", ":")),))
                state.setTimeoutTimestamp(max(wake, wm, 1))  # Spark wants a positive timestamp
            yield _events_frame(events)

        out = rows.groupBy(*keys).applyInPandasWithState(
            stateful, raw, StructType.fromDDL(_STATE), "append", GroupStateTimeout.EventTimeTimeout)
        return out.select(*alert_columns())

    # Batch: the watermark the stream would end with: newest event time (of the whole input) - lateness.
    horizon = source.agg((F.unix_millis(F.max("event_time")) - lateness_ms).alias("_horizon"))
    rows = rows.select(*cols).crossJoin(horizon)

    def whole(key: tuple, pdf: pd.DataFrame) -> pd.DataFrame:
        st: dict = {}
        wm = int(pdf["_horizon"].iloc[0])
        step.add(st, pdf.drop(columns="_horizon").sort_values("t", kind="stable"), -(2 ** 62))
        return _events_frame(step.advance(st, ":".join(map(str, key)), wm))

    return rows.groupBy(*keys).applyInPandas(whole, raw).select(*alert_columns())


def _ms(interval: str, name: str) -> int:
    try:
        return int(interval_seconds(interval) * 1000)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


# -- the continuous fast path ----------------------------------------------------------------------

def hard_limit_flags(df: DataFrame, topic: str = "telemetry", limits: dict[str, dict[str, float]] | None = None,
                     severity: str = "critical") -> DataFrame:
    """Raw Kafka rows -> ``key``/``value`` messages for readings beyond hard ``limits``
    (column -> {low, high}), one per reading, listing every breached limit.

    Map and filter only (``from_json`` with the contract's schema, no state, no
    ``current_timestamp``), so it runs under Spark's continuous trigger as well as in
    micro-batches. Unparseable records are skipped here (the silver path quarantines them).
    """
    limits = limits if limits is not None else {"engine_temp_c": {"high": 110.0},
                                                "cargo_temp_c": {"high": 12.0, "vehicle_types": ["reefer_truck"]}}
    schema = contracts.spark_schema(topic)
    names = {f.name for f in schema.fields}
    for m, lim in limits.items():
        if m not in names:
            raise ValueError(f"limits.{m}: not a field of the {topic} contract")
        if not isinstance(lim, dict) or not ({"low", "high"} & set(lim)) or set(lim) - {"low", "high", "vehicle_types"}:
            raise ValueError(f"limits.{m} takes low and/or high, and optionally vehicle_types")
    e = F.from_json(F.col("value").cast("string"), schema).alias("e")
    parsed = df.select(e, F.col("timestamp").alias("source_timestamp"))
    breaches = []
    for m, lim in limits.items():
        v = F.col(f"e.{m}").cast("double")
        applies = F.col("e.vehicle_type").isin(*lim["vehicle_types"]) if lim.get("vehicle_types") else F.lit(True)
        for side, op in (("high", v > F.lit(lim.get("high"))), ("low", v < F.lit(lim.get("low")))):
            if lim.get(side) is not None:
                breaches.append(F.when(applies & op, F.struct(F.lit(m).alias("metric"), v.alias("value"),
                                                    F.lit(float(lim[side])).alias("limit"),
                                                    F.lit("above_max" if side == "high" else "below_min").alias("reason"))))
    flagged = parsed.select("e", "source_timestamp", F.filter(F.array(*breaches), lambda x: x.isNotNull()).alias("breaches"))
    flagged = flagged.filter((F.size("breaches") > 0) & F.col("e.device_id").isNotNull())
    message = F.struct(
        F.col("e.event_id").alias("alert_id"), F.lit("flag").alias("event"), F.lit("hard_limit").alias("kind"),
        F.lit(severity).alias("severity"), F.col("e.device_id").alias("entity"),
        F.col("breaches")[0]["metric"].alias("metric"), F.col("breaches")[0]["reason"].alias("reason"),
        F.col("breaches")[0]["value"].alias("value"), F.col("breaches")[0]["limit"].alias("limit"),
        F.col("breaches").alias("breaches"), F.col("e.event_time").alias("event_time"),
        F.col("source_timestamp"))
    return flagged.select(F.col("e.device_id").alias("key"), F.to_json(message).alias("value"))
