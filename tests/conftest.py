"""Shared fixtures: one local SparkSession, one real Kafka broker, per-test configs."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from kappalake.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
CACHE_DIR = REPO / ".kappalake" / "cache"  # broker jars, shared with `make demo`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_overrides(data_dir: Path, port: int | None = None) -> dict[str, Any]:
    return {
        "broker.port": port or free_port(),
        "broker.controller_port": free_port(),
        "broker.data_dir": str(data_dir),
        "broker.cache_dir": str(CACHE_DIR),
    }


def make_config(base: dict[str, Any], tmp: Path, **overrides: Any) -> Config:
    """A local-profile config on the test broker, with unique topics and a lake under ``tmp``."""
    suffix = uuid.uuid4().hex[:8]
    values = {
        **base,
        "topics.clickstream.name": f"clickstream_{suffix}",
        "topics.telemetry.name": f"telemetry_{suffix}",
        "topics.alerts.name": f"alerts_{suffix}",
        "lake.root": str(tmp / "lake"),
        "lake.checkpoint_root": str(tmp / "checkpoints"),
        "spark.master": "local[2]",
        "spark.shuffle_partitions": 2,
        **overrides,
    }
    return load_config("local", CONF_DIR, overrides=values)


@pytest.fixture(scope="session")
def broker_conf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start one real Kafka broker (KRaft, loopback, random port) for the session."""
    from kappalake.ingest.broker import LocalBroker

    overrides = broker_overrides(tmp_path_factory.mktemp("broker"))
    cfg = load_config("local", CONF_DIR, overrides=overrides)
    broker = LocalBroker(cfg.broker)
    broker.start()
    yield overrides
    broker.stop()


@pytest.fixture
def cfg(broker_conf: dict[str, Any], tmp_path: Path) -> Config:
    return make_config(broker_conf, tmp_path)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """One local SparkSession (Delta + Kafka connector) for the whole run."""
    from kappalake.session import get_spark

    cfg = load_config("local", CONF_DIR, overrides={
        "spark.master": "local[2]",
        "spark.shuffle_partitions": 2,
        "spark.conf.spark.ui.enabled": "false",
        "spark.conf.spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
    })
    session = get_spark(cfg, app_name="kappalake-tests")
    yield session
    session.stop()
