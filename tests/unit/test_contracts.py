"""Event contracts: one JSON Schema per topic, read by producers, Spark and the docs."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, DoubleType, IntegerType, LongType, StructType, TimestampType

from kappalake.cli import main
from kappalake.ingest import contracts
from kappalake.ingest.producer import ProduceSpec, records
from kappalake.ingest.simulators.base import parse_ms
from tests.conftest import CONF_DIR, REPO

START = parse_ms("2026-11-22T08:00:00Z")


@pytest.fixture(scope="module")
def local_cfg():
    from kappalake.config import load_config

    return load_config("local", CONF_DIR)


def sample(cfg, topic: str, n: int = 3000, seed: int = 1) -> list[dict]:
    return [r.value for r in records(cfg, ProduceSpec(topic, count=n, seed=seed, start_ms=START))]


def test_every_topic_has_a_versioned_contract_with_schema_version_required():
    assert contracts.topics() == ["clickstream", "signups", "telemetry"]
    for topic in contracts.topics():
        s = contracts.schema(topic)
        assert contracts.latest_version(topic) == 1 == s["properties"]["schema_version"]["const"]
        assert "schema_version" in s["required"] and "event_id" in s["required"]
    assert contracts.kafka_key_field("clickstream") == "user_id"
    assert contracts.kafka_key_field("telemetry") == "device_id"
    with pytest.raises(KeyError, match="contracts exist for: clickstream, signups, telemetry"):
        contracts.schema("orders")
    with pytest.raises(KeyError, match="versions: 1"):
        contracts.schema("clickstream", 9)


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_generated_event_satisfies_its_contract(local_cfg, topic, seed):
    events = sample(local_cfg, topic, seed=seed)
    problems = [(e["event_id"], contracts.validation_errors(topic, e)) for e in events]
    assert [p for p in problems if p[1]] == []
    assert all(e["schema_version"] == 1 for e in events)


def test_validation_names_the_broken_field():
    good = {"schema_version": 1, "event_id": "9b9f042e-4b7b-4a62-b262-c1b2164fc09e", "device_id": "badge-z01-a",
            "device_kind": "badge_sensor", "event_time": "2026-11-22T08:00:00.000Z", "sent_at": "2026-11-22T08:00:00.040Z",
            "zone_id": "z01", "badge_id": "b00001", "direction": "in"}
    assert contracts.validation_errors("telemetry", good) == []
    assert contracts.validation_errors("telemetry", {**good, "direction": None}) == ["direction: None should not be valid under {'type': 'null'}"]
    missing = {k: v for k, v in good.items() if k != "badge_id"}
    assert contracts.validation_errors("telemetry", missing) == ["(event): 'badge_id' is a required property"]
    assert contracts.validation_errors("telemetry", {**good, "event_time": "2026-11-22 08:00:00"})[0].startswith("event_time:")
    assert contracts.validation_errors("telemetry", {**good, "colour": "red"})[0].startswith("(event): Additional properties")
    vehicle = {**good, "device_kind": "vehicle"}
    assert any("'engine_temp_c' is a required property" in e for e in contracts.validation_errors("telemetry", vehicle))


def test_spark_schema_is_derived_from_the_contract(spark):
    s = contracts.spark_schema("clickstream")
    assert s == StructType.fromDDL(contracts.ddl("clickstream"))  # the DDL in the docs says the same
    assert isinstance(s, StructType)
    assert list(s.fieldNames()) == list(contracts.schema("clickstream")["properties"])
    types = {f.name: f.dataType for f in s.fields}
    assert types["event_time"] == TimestampType() and types["price"] == DecimalType(12, 2)  # money: exact
    assert types["quantity"] == IntegerType() and types["schema_version"] == IntegerType()
    assert types["geo"].fieldNames() == ["country", "city", "lat", "lon"]
    assert {f.name: f.dataType for f in contracts.spark_schema("telemetry").fields}["odometer_km"] == DoubleType()
    assert "buffer_ms int" in contracts.ddl("clickstream") and "badge_id string" in contracts.ddl("telemetry")
    assert LongType() not in types.values()  # every integer has a declared width


@pytest.mark.parametrize("topic", ["clickstream", "telemetry"])
def test_from_json_with_the_contract_schema_parses_generated_events(spark, local_cfg, topic):
    events = sample(local_cfg, topic, n=400)
    raw = spark.createDataFrame([(json.dumps(e),) for e in events], "value string")
    parsed = raw.select(F.from_json("value", contracts.spark_schema(topic)).alias("e")).select("e.*")
    required = [f for f in contracts.required_fields(topic)]
    nulls = parsed.select([F.sum(F.col(c).isNull().cast("int")).alias(c) for c in required]).first().asDict()
    assert nulls == {c: 0 for c in required}
    # Timestamps parse as UTC with their milliseconds intact.
    iso = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    back = {r["event_id"]: (r["t"], r["s"]) for r in parsed.select(
        "event_id", F.date_format("event_time", iso).alias("t"), F.date_format("sent_at", iso).alias("s")).collect()}
    assert back == {e["event_id"]: (e["event_time"], e["sent_at"]) for e in events}


def test_docs_are_generated_from_the_contracts_and_current(tmp_path, capsys):
    committed = (REPO / "docs" / "contracts.md").read_text()
    assert committed == contracts.markdown(), "docs/contracts.md is stale: run `kappalake contracts docs --output docs/contracts.md`"
    for field in ("event_id", "session_id", "geo.lat", "engine_temp_c", "cargo_temp_c", "badge_id", "road_condition"):
        assert f"`{field}`" in committed
    out = tmp_path / "c.md"
    assert main(["--conf-dir", str(CONF_DIR), "contracts", "docs", "--output", str(out)]) == 0
    assert out.read_text() == committed


def test_contracts_validate_command_reports_bad_lines(local_cfg, tmp_path, capsys):
    events = sample(local_cfg, "clickstream", n=20)
    lines = [json.dumps(e) for e in events] + ['{"event_id": 1', json.dumps({**events[0], "price": "12.5"})]
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(lines) + "\n")
    assert main(["--conf-dir", str(CONF_DIR), "contracts", "validate", "clickstream", "--file", str(f)]) == 1
    out = capsys.readouterr().out
    assert "line 21: not JSON" in out and "line 22: price: '12.5' is not of type 'number', 'null'" in out
    assert "20 of 22 events valid against clickstream v1" in out
