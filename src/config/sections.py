"""The configuration's sections other than the pipelines: broker, Kafka, topics, Spark, lake, producers,
reference data, privacy, alerts, quality, monitoring, maintenance, dashboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints, field_validator,
                      model_validator)

from kappalake.config.shapes import check_notifier, check_suite_shape

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Units Spark's interval parser accepts for processingTime triggers.
INTERVAL = re.compile(r"^\d+\s+(millisecond|second|minute|hour)s?$")
SECRET_KEY = re.compile(r"(password|secret|jaas|token|credential)", re.IGNORECASE)
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def _scalar_to_str(v: Any) -> Any:
    """Map values are strings for Spark/Kafka/Delta; accept YAML scalars (true, 10) too."""
    if isinstance(v, bool):
        return str(v).lower()
    return str(v) if isinstance(v, (int, float)) else v


# Property maps (Spark conf, Kafka client properties, Delta table properties).
StrMap = dict[str, Annotated[str, BeforeValidator(_scalar_to_str)]]


def _check_table_name(v: str, example: str) -> str:
    """``v`` if it names a table as ``layer.name``."""
    if not TABLE_NAME.match(v):
        raise ValueError(f"table name {v!r} must look like 'layer.name' (e.g. {example})")
    return v


def _join(root: str, *parts: str) -> str:
    # Local relative paths are made absolute so Spark, Delta and the checkpoint agree on them.
    if "://" not in root and not root.startswith("/"):
        root = str(Path(root).resolve())
    return "/".join([root.rstrip("/"), *parts])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BrokerConf(_Model):
    """The embedded local Kafka broker (loopback only)."""

    mode: Literal["embedded", "external"] = "embedded"
    kafka_version: str = "4.1.1"
    port: int = Field(9092, ge=1024, le=65535)
    controller_port: int = Field(9093, ge=1024, le=65535)
    data_dir: str = ".kappalake/broker"
    cache_dir: str = ".kappalake/cache"
    heap: str = "512m"
    start_timeout_s: float = Field(90.0, gt=0)
    properties: StrMap = {}

    @model_validator(mode="after")
    def _ports_differ(self) -> "BrokerConf":
        if self.port == self.controller_port:
            raise ValueError("broker.port and broker.controller_port must differ")
        return self


class ClusterConf(_Model):
    """A local Spark standalone cluster (``kappalake cluster start``): master and workers on
    127.0.0.1, each its own JVM; jobs reach it with ``--master spark://127.0.0.1:<port>``."""

    port: int = Field(7077, ge=1024, le=65535)
    webui_port: int = Field(8080, ge=1024, le=65535)
    workers: int = Field(2, ge=1, le=16)
    worker_cores: int = Field(3, ge=1)       # task slots each worker offers (threads, not physical cores)
    worker_memory: str = "1536m"             # what executors on a worker may take in all
    daemon_memory: str = "256m"              # heap of the master and worker daemons themselves
    dir: str = ".kappalake/cluster"          # pids, logs, the workers' work directories
    start_timeout_s: float = Field(90.0, gt=0)  # how long `cluster start` waits for the master and every worker


class KafkaConf(_Model):
    """How clients reach Kafka; security settings are shared by Spark and kafka-python."""

    bootstrap_servers: Optional[str] = None
    client_id: Optional[str] = None  # default: app_name
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # AWS_MSK_IAM: Amazon MSK with IAM access control (the instance role's credentials; no
    # username or password; the Spark side needs software.amazon.msk:aws-msk-iam-auth).
    sasl_mechanism: Optional[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"]] = None
    sasl_username: Optional[str] = None
    sasl_password: Optional[SecretStr] = None
    ssl_cafile: Optional[str] = None
    # Extra Kafka client properties for Spark's source/sink, passed as kafka.<key>.
    options: StrMap = {}
    # read_committed: streams never see records of aborted (or still open) transactions, as
    # Kafka's own consumers with exactly-once producers; read_uncommitted reads them too.
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    # How long a stream waits for an unreachable Kafka (broker down, network cut) before it
    # fails; 0 fails at the first timeout. Either way a restart resumes where it stopped.
    outage_wait_s: int = Field(300, ge=0)

    @model_validator(mode="after")
    def _sasl_complete(self) -> "KafkaConf":
        if self.sasl_mechanism == "AWS_MSK_IAM":
            if self.security_protocol != "SASL_SSL":
                raise ValueError("sasl_mechanism AWS_MSK_IAM needs kafka.security_protocol: SASL_SSL (MSK's IAM port, 9098)")
            if self.sasl_username or self.sasl_password:
                raise ValueError("sasl_mechanism AWS_MSK_IAM takes no kafka.sasl_username/sasl_password: the "
                                 "credentials are the instance role's (or AWS_PROFILE's)")
        elif self.security_protocol.startswith("SASL"):
            missing = [k for k in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, k) is None]
            if missing and "sasl.jaas.config" not in self.options:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs kafka.{', kafka.'.join(missing)} "
                    "(password as ${env:VAR}) or kafka.options.'sasl.jaas.config'"
                )
        return self


class TopicConf(_Model):
    name: Optional[str] = None  # defaults to the logical name
    partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)
    config: StrMap = {}


class SparkConf(_Model):
    master: Optional[str] = None
    shuffle_partitions: int = Field(4, ge=1)
    # Resolve the Kafka connector and Delta through spark.jars.packages (off on EMR, where
    # spark-submit/--packages and the delta-defaults classification provide them).
    packages: bool = True
    kafka_connector_version: str = "4.0.0"
    # More Maven coordinates for spark.jars.packages / --packages, e.g. the MSK IAM login module.
    extra_packages: list[Annotated[str, StringConstraints(pattern=r"^[\w.-]+:[\w.-]+:[\w.-]+$")]] = []
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    conf: StrMap = {}


class LakeConf(_Model):
    root: str = "lake"
    checkpoint_root: str = "lake/_checkpoints"
    table_properties: StrMap = {}

    def table_path(self, table: str) -> str:
        """Storage path of a logical table name such as ``bronze.clickstream``."""
        layer, name = table.split(".", 1)
        return _join(self.root, layer, name)

    def checkpoint_path(self, pipeline: str) -> str:
        return _join(self.checkpoint_root, pipeline)


class ProducerConf(_Model):
    """kafka-python producer settings and simulator sizes for ``kappalake produce``."""

    acks: Annotated[Literal["all", "1", "0"], BeforeValidator(_scalar_to_str)] = "all"
    enable_idempotence: bool = True
    linger_ms: int = Field(20, ge=0)
    batch_size: int = Field(256 * 1024, ge=1024)
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "gzip"
    max_request_size: int = Field(2 * 1024 * 1024, ge=1024)
    users: int = Field(5000, ge=1)      # clickstream population
    devices: int = Field(200, ge=1)     # telemetry vehicles
    people: int = Field(1500, ge=0)     # badge holders on campus

    @model_validator(mode="after")
    def _idempotence_needs_acks_all(self) -> "ProducerConf":
        if self.enable_idempotence and self.acks != "all":
            raise ValueError("producer.enable_idempotence: true needs producer.acks: all (or set enable_idempotence: false)")
        return self


class ReferenceConf(_Model):
    """Seeded dimension tables (``kappalake reference create``)."""

    seed: int = 42
    products: int = Field(200, ge=1, le=10000)
    tables: dict[Literal["products", "zones", "bandwidth_plans"], str] = {
        "products": "dim.products", "zones": "dim.zones", "bandwidth_plans": "dim.bandwidth_plans"}

    @field_validator("tables")
    @classmethod
    def _table_names(cls, v: dict[str, str]) -> dict[str, str]:
        for kind, name in v.items():
            if not TABLE_NAME.match(name):
                raise ValueError(f"reference.tables.{kind} {name!r} must look like 'layer.name' (e.g. dim.{kind})")
        missing = {"products", "zones", "bandwidth_plans"} - set(v)
        if missing:
            raise ValueError(f"reference.tables needs names for: {', '.join(sorted(missing))}")
        return v


class PrivacyConf(_Model):
    """The secret behind the keyed pseudonyms of personal fields (only as ${env:VAR})."""

    secret: Optional[SecretStr] = None


class AlertsConf(_Model):
    """Where alert events go besides the Delta table and the Kafka topic: notifiers (webhooks...),
    called off the stream's thread with retries; every outcome lands in ``deliveries_table``."""

    notifiers: list[dict[str, Any]] = []  # {type: webhook, url: ..., headers: {...}} | {type: log} | {type: class, class: pkg.Cls}
    max_attempts: int = Field(5, ge=1)
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(30.0, ge=0)
    queue_size: int = Field(1000, ge=1)
    deliveries_table: str = "ops.alert_deliveries"

    @field_validator("notifiers")
    @classmethod
    def _buildable(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, spec in enumerate(v):
            check_notifier(f"alerts.notifiers[{i}]", spec)  # ValueError names the entry and the problem
        return v

    @field_validator("deliveries_table")
    @classmethod
    def _table_name(cls, v: str) -> str:
        return _check_table_name(v, "ops.alert_deliveries")


class QualityConf(_Model):
    """Expectation suites (one per table, Great Expectations' format) and where quality lands."""

    # Directory of suites, relative to the conf directory: <table>.yaml, e.g. silver.clickstream.yaml.
    suites_dir: Optional[str] = "expectations"
    # table -> suite ({expectations: [{type, kwargs, meta: {policy, rule, scope}}]}); filled from
    # suites_dir at load, a suite given here inline wins over its file.
    suites: dict[str, dict[str, Any]] = {}
    metrics_table: str = "ops.quality_metrics"
    docs_dir: str = ".kappalake/quality"   # GX project written by `quality report`: suites, results, Data Docs
    fail_sample: int = Field(5, ge=1)      # failing rows quoted in the error of a `fail` expectation

    @field_validator("suites")
    @classmethod
    def _suite_shapes(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for table, suite in v.items():
            if not TABLE_NAME.match(table):
                raise ValueError(f"suite for {table!r}: the key must be a table name like 'silver.clickstream'")
            check_suite_shape(table, suite)  # ValueError naming the expectation and the problem
        return v

    @field_validator("metrics_table")
    @classmethod
    def _table_name(cls, v: str) -> str:
        return _check_table_name(v, "ops.quality_metrics")


class MonitoringConf(_Model):
    """What the streaming job records about itself (`kappalake status` reads it back)."""

    metrics_table: str = "ops.stream_metrics"   # one row per micro-batch, start, idle beat and stop of every query
    lag_table: str = "ops.consumer_lag"         # Kafka end offset - committed offset, per pipeline and partition
    losses_table: str = "ops.data_loss"         # offsets Kafka deleted before a pipeline read them
    flush_s: float = Field(10.0, gt=0)          # how often the job writes what it recorded
    # Commit each Kafka-reading pipeline's processed offsets to this consumer group ("{pipeline}"
    # is replaced), so kafka-consumer-groups.sh and lag exporters see the lag; null: do not.
    consumer_group: Optional[str] = None
    # Each recorded event also as one JSON line (logger kappalake.metrics): "-" to stderr (YARN
    # and EMR collect it), a file path to append to, null for none.
    json_log: Optional[str] = "-"
    stale_after_s: float = Field(60.0, gt=0)    # `status`: a query silent this long is no longer running

    @field_validator("metrics_table", "lag_table", "losses_table")
    @classmethod
    def _table_name(cls, v: str) -> str:
        return _check_table_name(v, "ops.stream_metrics")


class MaintenanceConf(_Model):
    """`kappalake maintain`: OPTIMIZE (bin-packing, or Z-ORDER by the columns given) and VACUUM."""

    zorder: dict[str, list[str]] = {}           # table -> columns, e.g. silver.clickstream: [user_id]
    retain_hours: float = Field(168.0, ge=0)    # VACUUM keeps files removed less than this long ago
    min_retain_hours: float = Field(168.0, ge=0)  # below this, VACUUM needs --force (time travel, slow readers)
    reader_margin_hours: float = Field(1.0, ge=0)  # kept beyond the oldest version a stream still has to read

    @field_validator("zorder")
    @classmethod
    def _tables(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for table, columns in v.items():
            if not TABLE_NAME.match(table):
                raise ValueError(f"zorder key {table!r} must be a table name like 'silver.clickstream'")
            if not columns:
                raise ValueError(f"zorder.{table}: name at least one column, or leave the table out")
        return v


class DashboardConf(_Model):
    """`kappalake dashboard`: the web page of pipeline health, data quality and the business views."""

    port: int = Field(8050, ge=1024, le=65535)  # served on 127.0.0.1 only (an SSH tunnel reaches it on EMR)
    refresh_s: float = Field(15.0, ge=1)        # how often the page's figures are read again from the lake
    history_minutes: int = Field(360, ge=1)     # time series show this much before the newest point
    rows: int = Field(15, ge=1, le=1000)        # rows in each list (products, quarantined records, vehicles, ...)
