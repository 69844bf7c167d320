"""A new event type by configuration alone: a conf directory with its contract, pipelines,
expectations and a library registering a simulator and a gold transform, run as a user runs it
(the CLI as a process, so nothing of the library is registered in the suite's own process),
from Kafka to silver and a gold table, without editing any module of kappalake."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml
from pyspark.sql import functions as F

from kappalake.config import load_config
from tests.conftest import CONF_DIR, REPO, as_yaml, config_values
from tests.lake_checks import assert_exactly_once, header

pytestmark = pytest.mark.process  # the CLI as a user runs it: the library is imported there, not here

CONTRACT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "orders",
    "description": "One order placed in the shop.",
    "x-kafka-key": "user_id",
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "user_id", "amount", "currency", "event_time", "sent_at"],
    "properties": {
        "event_id": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
        "user_id": {"type": "string"},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "coupon": {"type": ["string", "null"]},
        "event_time": {"type": "string", "format": "date-time"},
        "sent_at": {"type": "string", "format": "date-time"},
    },
}

LIBRARY = '''
"""The orders event type: its simulator and its gold transform, registered by name."""
import random
import uuid

from pyspark.sql import DataFrame, functions as F

from kappalake.ingest.simulators import simulator
from kappalake.ingest.simulators.base import SimEvent, iso_ms
from kappalake.transforms.registry import transform


@simulator("orders", implausible=("amount", (1e7, 1e9)))
def orders(producer, spec, ref, start_ms, rate):
    rng = random.Random(spec.seed)
    t = start_ms
    while True:
        t += max(1, int(rng.expovariate(rate) * 1000))
        user = f"u{rng.randrange(50):03d}"
        yield SimEvent(t, user, {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "user_id": user,
            "amount": round(rng.uniform(1, 500), 2), "currency": rng.choice(["EUR", "USD"]),
            "coupon": rng.choice([None, "WINTER"]), "event_time": iso_ms(t), "sent_at": iso_ms(t + rng.randrange(900))})


@transform
def order_minute(df: DataFrame, window: str = "1 minute", lateness: str = "1 hour") -> DataFrame:
    """Orders and revenue per minute and currency."""
    return (df.withWatermark("event_time", lateness)
            .groupBy(F.window("event_time", window).start.alias("window_start"), "currency")
            .agg(F.count("*").alias("orders"), F.sum("amount").alias("revenue")))
'''

EXPECTATIONS = {"name": "silver.orders", "expectations": [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "max_value": 100000},
     "meta": {"rule": "amount_plausible", "policy": "quarantine"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "arrival_delay_ms", "min_value": -300000},
     "meta": {"rule": "event_time_not_in_future", "policy": "quarantine"}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "event_time", "min_value": "2000-01-01T00:00:00", "max_value": "2100-01-01T00:00:00"},
     "meta": {"rule": "event_time_plausible", "policy": "quarantine"}},
]}

PIPELINES = {
    "bronze_orders": {"source": {"topic": "orders", "starting_offsets": "earliest"}, "transforms": ["bronze_record"],
                      "sink": {"table": "bronze.orders", "partition_by": ["kafka_date"], "time_column": "kafka_timestamp"}},
    "silver_orders": {"source": {"table": "bronze.orders"},
                      "transforms": [{"name": "parse_events", "topic": "orders"}, "normalise",
                                     {"name": "pseudonymise", "fields": ["user_id"]},
                                     {"name": "dedup", "key": "event_id", "time_column": "kafka_timestamp",
                                      "delay": "10 minutes"}],
                      "sink": {"table": "silver.orders", "partition_by": ["event_date"],
                               "quarantine": "quarantine.orders", "time_column": "event_time"}},
    "gold_order_minute": {"source": {"table": "silver.orders"}, "transforms": [{"name": "order_minute", "window": "1 minute"}],
                          "sink": {"table": "gold.order_minute", "mode": "merge", "keys": ["window_start", "currency"],
                                   "time_column": "window_start"}},
}


@pytest.fixture(scope="module")
def orders_lake(spark, broker_conf, tmp_path_factory):
    """A conf directory with the orders event type; produced with faults and run by the CLI."""
    tmp = tmp_path_factory.mktemp("new_topic")
    conf = tmp / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "contracts").mkdir()
    (conf / "contracts" / "orders.v1.json").write_text(json.dumps(CONTRACT, indent=2))
    (conf / "orders.py").write_text(textwrap.dedent(LIBRARY))
    (conf / "expectations" / "silver.orders.yaml").write_text(yaml.safe_dump(EXPECTATIONS))
    local = yaml.safe_load((conf / "local.yaml").read_text())
    local["libraries"] = ["orders.py"]
    local["topics"] = {"orders": {"partitions": 2}}
    every = {"trigger": {"processing_time": "5 seconds"}}
    local["pipelines"] = {**local.get("pipelines", {}), **{n: {**p, **every} for n, p in PIPELINES.items()}}
    (conf / "local.yaml").write_text(yaml.safe_dump(local))
    values = config_values(broker_conf, tmp, **{"topics.orders.name": f"orders_{tmp.name}"})
    overrides = as_yaml(values, tmp / "lake.yaml")

    def kappalake(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "kappalake", "--conf-dir", str(conf), "--config", str(overrides),
                               *args], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    produced = kappalake("produce", "orders", "--count", "3000", "--span", "1800", "--seed", "5", "--faults", "0.01",
                         "--quiet")
    ran = kappalake("ingest", "--available-now", *[a for n in PIPELINES for a in ("--pipeline", n)])
    verified = kappalake("verify", *[a for n in PIPELINES for a in ("--pipeline", n)])
    # The suite's process reads the tables by path: the main conf with the same lake and topics.
    cfg = load_config("local", CONF_DIR, overrides={**values, "topics.orders.partitions": 2})
    return cfg, produced, ran, verified, kappalake, overrides


def test_the_new_topic_streams_from_kafka_to_silver_and_gold(spark, orders_lake):
    cfg, produced, ran, verified, _, _ = orders_lake
    assert produced.startswith("orders: 3,000 of 3,000 acked, 0 errors"), produced
    assert {ln.split(":")[0] for ln in ran.splitlines() if " rows in " in ln} == set(PIPELINES), ran
    assert_exactly_once(spark, cfg, "orders", 3000)
    # verify follows the configuration: every bronze row in silver, the quarantine or dropped as an
    # identical resend; gold equal to its batch recomputation; every Delta version readable.
    checks = [ln for ln in verified.splitlines() if ln.strip()]
    assert len(checks) == 7 and all(ln.startswith("ok ") for ln in checks), verified
    assert any(ln.split()[:3] == ["ok", "gold", "gold.order_minute"] for ln in checks), verified
    read = lambda name: spark.read.format("delta").load(cfg.lake.table_path(name))  # noqa: E731
    bronze, silver, quarantine = read("bronze.orders"), read("silver.orders"), read("quarantine.orders")
    faults = {r["fault"]: r["n"] for r in bronze.groupBy(header("kl-fault").alias("fault")).agg(F.count("*").alias("n"))
              .collect()}
    # The contract and the suite's rules of the new topic judged its rows, with reasons.
    reasons = {r["kind"] for r in quarantine.select(F.explode("errors").alias("r"))
               .select(F.split("r", ":")[0].alias("kind")).collect()}
    assert {"malformed_json", "missing", "wrong_type", "amount_plausible", "event_time_not_in_future"} <= reasons, reasons
    by_fault = {r["fault"]: r["n"] for r in quarantine.groupBy(header("kl-fault").alias("fault")).count()
                .withColumnRenamed("count", "n").collect()}
    assert by_fault.get("implausible_value") == faults["implausible_value"], by_fault
    assert silver.where(F.col("user_id").startswith("u")).count() == 0  # pseudonymised
    assert read("gold.order_minute").agg(F.sum("orders")).first()[0] == silver.count()


def test_the_cli_names_what_a_new_topic_lacks(orders_lake):
    _, _, _, _, kappalake, overrides = orders_lake
    # kappalake's own conf directory, the same broker and topics: no library registers the simulator.
    proc = subprocess.run([sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), "--config", str(overrides),
                           "produce", "orders"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("kappalake: configuration error: produce: no simulator for topic 'orders'; "
                                   "simulators exist for clickstream, signups, telemetry (a library named in `libraries` "
                                   "can register one)"), proc.stderr
    # The new topic's contract is one of the project's for every command (here without Spark).
    assert kappalake("contracts", "ddl", "orders").strip() == (
        "event_id string, user_id string, amount double, currency string, coupon string, event_time timestamp, "
        "sent_at timestamp")
