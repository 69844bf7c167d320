"""Shared fixtures: one local SparkSession, one real Kafka broker, per-test configs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from kappalake.config import Config, load_config, nest_overrides

# The JVMs the suite starts as processes (jobs, the CLI, spark-submit, kernels, brokers) compile
# with C1 only: a short-lived JVM spends ~40% of its CPU in the C2 compiler on code that never
# runs long enough to pay it back (measured: 70.5 -> 41.3 s of JVM CPU for reference tables and
# two silver batches, the work itself unchanged). Without tiers the code cache would default to
# 48 MiB, which Spark's generated classes fill ("Out of space in CodeCache"): 240 MiB, as tiered.
# Inherited by every child process; the suite's own session, which lives for the whole run and
# gets ~25% faster with C2 once warm, turns the tiers back on (the `spark` fixture).
# Every JVM of the suite, the session's too, collects garbage with the parallel collector: on
# two cores G1's concurrent threads cost more than they save (measured: the demo's pipelines
# twice in one JVM, 169 -> 152 s of JVM CPU, 127 -> 120 s wall).
# Spark evaluates expressions interpreted in every JVM of the suite (SparkConf takes `spark.*`
# Java system properties as defaults): on the suite's small DataFrames, generating and compiling
# code costs more than it saves (measured: silver and gold tests 239 -> 215 s, the chaos kills
# 199 -> 173 s). Results are the same by Spark's design: it falls back to this path whenever
# code does not compile. Jobs users start are untouched; `kappalake bench` measures them.
# Delta's optimized writes and auto compaction are off in the suite's JVMs (the session settings
# override the tables' properties, which stay set): they change only how rows are laid out in
# files, and cost the suite's thousands of tiny commits an extra shuffle and a file count each
# (measured: 60 appends of 2,000 rows 14.6 -> 12.8 s). `kappalake bench` and the jobs users
# start keep them; test_operations proves OPTIMIZE and VACUUM on the small files streams leave.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseParallelGC"
               " -Dspark.sql.codegen.wholeStage=false -Dspark.sql.codegen.factoryMode=NO_CODEGEN"
               " -Dspark.databricks.delta.optimizeWrite.enabled=false -Dspark.databricks.delta.autoCompact.enabled=false")
if JVM_OPTIONS not in os.environ.get("JAVA_TOOL_OPTIONS", ""):
    os.environ["JAVA_TOOL_OPTIONS"] = f"{os.environ.get('JAVA_TOOL_OPTIONS', '')} {JVM_OPTIONS}".strip()

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
CACHE_DIR = REPO / ".kappalake" / "cache"  # broker jars, shared with `make demo`


# Tests are marked by what they need (pyproject.toml lists the markers): `spark` and `broker`
# follow from the fixtures a test uses; `process` and `browser` are set where a test starts
# processes of its own (a job, the CLI, a broker, a kernel, spark-submit) or drives Chromium.
NEEDS = {"spark": "spark", "broker_conf": "broker"}


# `make test` runs the suite on two workers (pytest-xdist): one worker's Spark waits on a single
# task, a commit or a process while the other computes (the serial run left the CPU 35% idle).
# Each worker takes whole modules, so a module's fixtures are built once, and the demo lake's
# users go to one worker, so it is built once.
DEMO_LAKE_MODULES = {"tests/e2e/test_dashboard.py", "tests/e2e/test_notebooks.py", "tests/integration/test_consumers.py",
                     "tests/integration/test_codegen.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in NEEDS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        module = item.nodeid.split("::", 1)[0]
        if "demo_lake" in item.fixturenames and module not in DEMO_LAKE_MODULES:
            raise pytest.UsageError(f"{module} uses demo_lake: add it to DEMO_LAKE_MODULES in tests/conftest.py")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # a worker inherits the controller's environment (JAVA_TOOL_OPTIONS)
    if getattr(config.option, "numprocesses", None):
        resolve_spark_packages()
    share_jvm_classes()


def share_jvm_classes() -> None:
    """Every JVM of the run maps one class-data-sharing archive of Spark's classes
    (tests/class_archive.py), built on the checkout's first run."""
    from tests import class_archive

    archive = class_archive.ensure(CACHE_DIR, REPO, JVM_OPTIONS)
    if archive is not None and str(archive) not in os.environ["JAVA_TOOL_OPTIONS"]:
        os.environ["JAVA_TOOL_OPTIONS"] += f" -XX:SharedArchiveFile={archive} {class_archive.QUIET}"


def resolve_spark_packages() -> None:
    """Resolve Spark's packages (Delta, the Kafka connector) into Ivy's cache before the workers
    start: two JVMs resolving into a cold cache at once fail ("download failed: io.delta#...";
    seen on a fresh machine: every Spark test of one worker errored)."""
    from importlib.metadata import version

    from kappalake.session import kafka_connector_package

    cfg = load_config("local", CONF_DIR)
    packages = [f"io.delta:delta-spark_2.13:{version('delta_spark')}", kafka_connector_package(cfg)]
    jars = Path.home() / ".ivy2.5.2" / "jars"  # Spark 4's default spark.jars.ivy
    if all((jars / f"{g}_{a}-{v}.jar").is_file() for g, a, v in (p.split(":") for p in packages)):
        return
    code = ("from kappalake.config import load_config; from kappalake.session import get_spark; "
            f"get_spark(load_config('local', {str(CONF_DIR)!r}, overrides={{'spark.master': 'local[1]', "
            "'spark.conf.spark.ui.enabled': 'false'})).stop()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600, cwd=REPO)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "demo_lake" if module in DEMO_LAKE_MODULES else module

    config.option.loadscopereorder = False  # collection order: the slow e2e and integration modules first
    return ByModule(config, log)


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
    return load_config("local", CONF_DIR, overrides=config_values(base, tmp, **overrides))


def config_values(base: dict[str, Any], tmp: Path, **overrides: Any) -> dict[str, Any]:
    """The dotted overrides :func:`make_config` applies."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **base,
        "topics.clickstream.name": f"clickstream_{suffix}",
        "topics.telemetry.name": f"telemetry_{suffix}",
        "topics.alerts.name": f"alerts_{suffix}",
        "topics.signups.name": f"signups_{suffix}",
        "topics.offers.name": f"offers_{suffix}",
        "lake.root": str(tmp / "lake"),
        "lake.checkpoint_root": str(tmp / "checkpoints"),
        "spark.master": "local[2]",
        "spark.shuffle_partitions": 2,
        "spark.conf.spark.ui.enabled": "false",  # jobs the tests start as processes too
        **overrides,
    }


def as_yaml(values: dict[str, Any], path: Path) -> Path:
    """Dotted overrides written as a nested YAML file (for ``--config`` or ``KAPPALAKE_CONFIG``)."""
    import yaml

    path.write_text(yaml.safe_dump(nest_overrides(values)))  # map keys with dots (spark.conf) stay whole
    return path


@pytest.fixture(scope="session")
def demo_lake(spark, broker_conf, tmp_path_factory) -> tuple[Config, Path]:
    """A lake like the demo's, built once for read-only consumers (BI queries, notebooks, other
    engines): both topics with faults and the hot-truck scenario, every pipeline but the
    continuous fast path run to completion. Returns the config and a YAML file of it."""
    from kappalake.config import TriggerConf
    from kappalake.ingest.faults import FaultRates
    from kappalake.ingest.producer import ProduceSpec, produce
    from kappalake.ingest.topics import ensure_topics
    from kappalake.pipelines.reference import write_reference_tables
    from kappalake.pipelines.runner import run_pipelines

    tmp = tmp_path_factory.mktemp("demo_lake")
    values = config_values(broker_conf, tmp)
    cfg = load_config("local", CONF_DIR, overrides=values)
    ensure_topics(cfg.kafka_settings, cfg.topic_specs())
    write_reference_tables(spark, cfg)
    world = {"users": 300, "devices": 20, "people": 300}
    for i, topic in enumerate(["clickstream", "telemetry"]):
        produce(cfg, ProduceSpec(topic, count=2500, seed=70 + i, span=1200, faults=FaultRates.uniform(0.005),
                                 scenario="hot-truck" if topic == "telemetry" else None, **world))
    names = [n for n in cfg.pipelines if n != "alerts_fast"]
    run_pipelines(spark, cfg, names, trigger=TriggerConf(available_now=True), timeout=900)
    return cfg, as_yaml(values, tmp / "lake.yaml")


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
        "spark.conf.spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=4",  # C2 again (see JVM_OPTIONS)
    })
    session = get_spark(cfg, app_name="kappalake-tests")
    yield session
    session.stop()
