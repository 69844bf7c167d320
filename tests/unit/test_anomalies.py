"""Anomaly detectors on Spark: streamed micro-batches (out of order, late) == one batch; fast-path flags."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from kappalake.config import SinkConf, load_config
from kappalake.errors import ConfigError
from kappalake.pipelines.compose import apply_transforms
from kappalake.pipelines.runner import start_pipeline
from kappalake.transforms.anomalies import hard_limit_flags, rate_anomalies, rate_step, temperature_anomalies
from tests.conftest import CONF_DIR
from tests.stream_harness import batch_through, stream_batches

T0 = datetime(2026, 11, 22, 23, 59, 0)
TEL = ("device_id string, device_kind string, vehicle_type string, event_time timestamp, engine_temp_c double, "
       "cargo_temp_c double")
SINK = SinkConf(table="ops.alerts")
COMPARED = ["alert_id", "event", "entity", "metric", "reason", "started_at", "event_time", "ended_at", "duration_s",
            "readings", "peak"]


def reading(device: str, sec: float, engine: float, cargo: float | None = None, vtype: str = "fuel_truck"):
    return (device, "vehicle", vtype, T0 + timedelta(seconds=sec), engine, cargo)


def hot(device: str, start: int, seconds: int) -> list[tuple]:
    """Normal, then out of band for a ``seconds`` span (a reading a second), then normal again."""
    return ([reading(device, t, 90.0) for t in range(start - 5, start)]
            + [reading(device, t, 112.0) for t in range(start, start + seconds + 1)]
            + [reading(device, t, 90.0) for t in range(start + seconds + 1, start + seconds + 6)])


def detector(df):
    return temperature_anomalies(df, lateness="20 seconds", idle_timeout="1 minute", baseline_k=None)


@pytest.fixture(scope="module")
def telemetry_batches(spark):
    rows = (hot("truck-a", 10, 9)          # 9 s: no alert
            + hot("truck-b", 10, 10)       # 10 s: one alert
            + hot("truck-c", 10, 12) + hot("truck-c", 60, 15)  # two episodes
            + [reading("reefer-d", t, 88.0, 9.5, "reefer_truck") for t in range(30, 45)]  # cargo warm 14 s, then silent
            + [reading("truck-e", t, 90.0, 15.0) for t in range(0, 40)])  # fuel truck: cargo band does not apply
    # Four micro-batches of 25 s of readings (lateness 20 s), then a too-late reading and a clock.
    rows.sort(key=lambda r: r[3])
    chunks = [[], [], [], []]
    for i, r in enumerate(rows):
        sec = (r[3] - T0).total_seconds()
        chunks[min(3, int(sec // 25))].append(r)
    late = [reading("truck-b", 12.5, 112.0)]  # arrives after the watermark passed it: dropped on the stream
    chunks[0].reverse()
    chunks[1] = chunks[1][::-1] + [reading("truck-b", 11.5, 112.0)]  # out of order, within the lateness (watermark 4 s)
    clock = [reading("clock", 200, 90.0)]  # moves the watermark past everything above
    batches = [spark.createDataFrame(c, TEL) for c in chunks] + [spark.createDataFrame(late + clock, TEL)]
    return batches


def test_streamed_alerts_one_per_episode_late_and_out_of_order(spark, tmp_path, telemetry_batches):
    streamed = stream_batches(spark, tmp_path, telemetry_batches, detector, SINK)
    got = sorted((r["entity"], r["metric"], r["event"], r["reason"], (r["started_at"] - T0).total_seconds(),
                  (r["event_time"] - T0).total_seconds()) for r in streamed.collect())
    assert got == [
        ("reefer-d", "cargo_temp_c", "close", "no_data", 30.0, 104.0),  # silent for the 1 minute idle timeout
        ("reefer-d", "cargo_temp_c", "open", "above_max", 30.0, 40.0),
        ("truck-b", "engine_temp_c", "close", "back_in_band", 10.0, 21.0),
        ("truck-b", "engine_temp_c", "open", "above_max", 10.0, 20.0),
        ("truck-c", "engine_temp_c", "close", "back_in_band", 10.0, 23.0),
        ("truck-c", "engine_temp_c", "close", "back_in_band", 60.0, 76.0),
        ("truck-c", "engine_temp_c", "open", "above_max", 10.0, 20.0),
        ("truck-c", "engine_temp_c", "open", "above_max", 60.0, 70.0),
    ]
    # The out-of-order reading counted (12 readings for 10 s + the extra at 11.5 s); the too-late one did not.
    b_close = streamed.filter("entity = 'truck-b' AND event = 'close'").first()
    assert b_close["readings"] == 12


def test_streamed_alerts_equal_one_batch(spark, tmp_path, telemetry_batches):
    streamed = stream_batches(spark, tmp_path, telemetry_batches, detector, SINK)
    union = telemetry_batches[0]
    for b in telemetry_batches[1:-1]:
        union = union.unionByName(b)
    union = union.unionByName(telemetry_batches[-1].filter("device_id = 'clock'"))  # without the too-late reading
    batch = batch_through(spark, tmp_path, union, detector, SINK)
    assert_df_equality(streamed.select(COMPARED), batch.select(COMPARED), ignore_row_order=True)


CLICK = "event_time timestamp, app string, page string, event_type string"


def test_rate_alert_opens_and_closes_once_per_incident_stream_equals_batch(spark, tmp_path):
    def events(start: int, end: int, error_every: int | None):
        out = []
        for i, sec in enumerate(range(start, end)):
            for j in range(4):  # 4 events per second on /checkout
                kind = "error" if error_every and (i * 4 + j) % error_every == 0 else "page_view"
                out.append((T0 + timedelta(seconds=sec), "web", "/checkout", kind))
            out.append((T0 + timedelta(seconds=sec), "web", "/product/p0001", "page_view"))
        return out

    rows = events(0, 120, None) + events(120, 180, 5) + events(180, 400, None)  # 20% errors for a minute
    batches = [spark.createDataFrame([r for r in rows if lo <= (r[0] - T0).total_seconds() < hi], CLICK)
               for lo, hi in ((0, 100), (100, 200), (200, 300), (300, 400))]

    def detect(df):
        return rate_anomalies(df, window="1 minute", slide="10 seconds", lateness="10 seconds", min_events=40)

    streamed = stream_batches(spark, tmp_path, batches, detect, SINK)
    got = sorted((r["entity"], r["metric"], r["event"], (r["event_time"] - T0).total_seconds()) for r in streamed.collect())
    assert got == [("web:/checkout", "error_rate", "close", 240.0), ("web:/checkout", "error_rate", "open", 130.0)]
    union = batches[0].unionByName(batches[1]).unionByName(batches[2]).unionByName(batches[3])
    batch = batch_through(spark, tmp_path, union, detect, SINK)
    assert_df_equality(streamed.select(COMPARED), batch.select(COMPARED), ignore_row_order=True)


def test_hard_limit_flags_map_only(spark):
    def payload(device, engine, cargo=None, vtype="fuel_truck"):
        return json.dumps({"event_id": f"e-{device}", "device_id": device, "device_kind": "vehicle", "vehicle_type": vtype,
                           "event_time": "2026-11-22T23:59:00.000Z", "engine_temp_c": engine, "cargo_temp_c": cargo}).encode()

    rows = [(b"k", payload("t1", 95.0, 15.0)),                       # fine (fuel truck cargo has no limit)
            (b"k", payload("t2", 115.0)),                            # engine over 110
            (b"k", payload("r3", 95.0, 13.0, "reefer_truck")),       # reefer cargo over 12
            (b"k", b"{not json"), (b"k", b"\xff\xfe")]              # skipped, never an error
    df = spark.createDataFrame(rows, "key binary, value binary").withColumn("timestamp", F.current_timestamp())
    out = {r["key"]: json.loads(r["value"]) for r in hard_limit_flags(df).collect()}
    assert set(out) == {"t2", "r3"}
    assert (out["t2"]["metric"], out["t2"]["value"], out["t2"]["limit"], out["t2"]["reason"]) == (
        "engine_temp_c", 115.0, 110.0, "above_max")
    assert out["r3"]["metric"] == "cargo_temp_c" and out["r3"]["kind"] == "hard_limit" and out["r3"]["alert_id"] == "e-r3"


@pytest.mark.parametrize("params, message", [
    ({"metrics": {"oil_temp_c": {"high": 1.0}}}, "metrics.oil_temp_c: no such column"),
    ({"metrics": {"engine_temp_c": {"low": 5.0, "high": 1.0}}}, "low 5.0 must be below high 1.0"),
    ({"min_duration": "ten seconds"}, "min_duration: interval 'ten seconds'"),
    ({"metrics": {"engine_temp_c": {"high": 100.0}}}, "metrics.engine_temp_c.min_std must be > 0 with a baseline"),
    ({"baseline_min_samples": 1}, "baseline_min_samples >= 2"),
])
def test_bad_detector_parameters_fail_at_start_naming_the_step(spark, params, message):
    cfg = load_config("local", CONF_DIR, overrides={
        "pipelines.alerts_telemetry.transforms": [{"name": "temperature_anomalies", **params}]})
    df = spark.createDataFrame([], TEL)
    with pytest.raises(ConfigError, match=r"pipelines\.alerts_telemetry\.transforms\[0\] \(temperature_anomalies\)") as e:
        apply_transforms(spark, cfg.pipeline("alerts_telemetry"), df)
    assert message in str(e.value)


def test_rate_parameters_are_checked():
    with pytest.raises(ValueError, match="min_events must be >= 1"):
        rate_step(min_events=0)
    with pytest.raises(ValueError, match="must be a whole number of slides"):
        rate_step(window="5 minutes", slide="7 seconds")


def test_continuous_trigger_needs_a_slot_per_partition(spark, tmp_path):
    # The test session runs local[2]; the telemetry topic has 3 partitions.
    cfg = load_config("local", CONF_DIR, overrides={"lake.checkpoint_root": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"pipelines\.alerts_fast\.trigger\.continuous holds 3 task slots .* "
                                          r"spark\.master 'local\[2\]' has 2: set spark\.master: local\[5\]"):
        start_pipeline(spark, cfg.pipeline("alerts_fast"))
