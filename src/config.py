"""Validated configuration: YAML profiles in ``conf/`` merged into one typed object.

Load order (later wins): ``conf/base.yaml`` -> ``conf/<profile>.yaml`` -> extra files given
with ``--config`` -> ``--set key.path=value`` overrides. Strings may reference environment
variables as ``${env:NAME}`` or ``${env:NAME:-default}``; secrets (passwords, JAAS configs,
tokens) *must* be such references so they never live in a file. Any unknown key, wrong type
or missing value raises :class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints, ValidationError,
                      field_validator, model_validator)

from kappalake.errors import ConfigError

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


class KafkaConf(_Model):
    """How clients reach Kafka; security settings are shared by Spark and kafka-python."""

    bootstrap_servers: Optional[str] = None
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


class SourceConf(_Model):
    """A Kafka topic (``topic``) or a Delta table read as a stream (``table``), exactly one."""

    topic: Optional[str] = None
    table: Optional[str] = None
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: Optional[int] = Field(None, ge=1)
    fail_on_data_loss: bool = True
    min_partitions: Optional[int] = Field(None, ge=1)
    max_files_per_trigger: Optional[int] = Field(None, ge=1)  # Delta sources
    max_bytes_per_trigger: Optional[str] = None  # Delta sources, e.g. 32m: a soft cap, at least one file a batch

    @model_validator(mode="after")
    def _one_source(self) -> "SourceConf":
        if (self.topic is None) == (self.table is None):
            raise ValueError("set exactly one of source.topic (a Kafka topic) or source.table (a Delta table, e.g. bronze.clickstream)")
        if self.max_bytes_per_trigger is not None and not re.fullmatch(r"\d+[kmg]?", self.max_bytes_per_trigger.lower()):
            raise ValueError(f"source.max_bytes_per_trigger {self.max_bytes_per_trigger!r} must be a size like 32m, 512k or 1g")
        if self.table is not None and not TABLE_NAME.match(self.table):
            raise ValueError(f"source.table {self.table!r} must look like 'layer.name' (e.g. bronze.clickstream)")
        return self


class RankConf(_Model):
    """Rank rows among those sharing ``within`` (e.g. zones in the same 15 minutes) by ``by``."""

    column: str
    within: list[str]
    by: list[str]  # column names, each optionally followed by ' desc'

    @field_validator("by")
    @classmethod
    def _order(cls, v: list[str]) -> list[str]:
        for item in v:
            parts = item.split()
            if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise ValueError(f"rank.by entry {item!r} must be a column name, optionally followed by asc or desc")
        return v


class SinkConf(_Model):
    """A Delta ``table`` (written idempotently per micro-batch) or a Kafka ``topic`` (rows with
    ``key``/``value`` columns, at-least-once; the only sink a continuous trigger can use)."""

    table: Optional[str] = None
    topic: Optional[str] = None  # logical topic name (declared under topics)
    partition_by: list[str] = []
    # Rows whose ``_errors`` is not empty go here (with reasons, raw payload, Kafka
    # coordinates) instead of ``table``.
    quarantine: Optional[str] = None
    # append: each micro-batch appends its rows (finalised windows, events).
    # merge: upsert on ``keys`` (streaming aggregations in update mode: a window's row is
    # rewritten with its new totals while it is open, and is final once the watermark passes).
    mode: Literal["append", "merge"] = "append"
    keys: list[str] = []
    rank: Optional[RankConf] = None
    # merge sinks: the stream's output mode. update (default) rewrites open windows every batch;
    # append merges each row once it is final (what session windows need), keyed so that a
    # row `kappalake reprocess` already wrote is replaced rather than duplicated.
    output_mode: Literal["update", "append"] = "update"
    # The column `kappalake reprocess --from/--to` ranges apply to (e.g. event_time, window_start).
    time_column: Optional[str] = None
    # After each committed micro-batch: also send its rows as JSON to this topic (keyed by
    # ``publish_key``; at-least-once), and/or to the notifiers under ``alerts``.
    publish: Optional[str] = None
    publish_key: str = "entity"
    notify: bool = False

    @field_validator("table", "quarantine")
    @classmethod
    def _table_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not TABLE_NAME.match(v):
            raise ValueError(f"table name {v!r} must look like 'layer.name' (lower case, e.g. bronze.clickstream)")
        return v

    @model_validator(mode="after")
    def _merge_needs_keys(self) -> "SinkConf":
        if (self.table is None) == (self.topic is None):
            raise ValueError("set exactly one of sink.table (a Delta table, e.g. silver.clickstream) or sink.topic (a Kafka topic)")
        if self.topic is not None and (self.quarantine or self.partition_by or self.publish or self.notify
                                       or self.mode != "append"):
            raise ValueError("a sink.topic (Kafka) sink takes no quarantine, partition_by, mode, publish or notify")
        if self.mode == "merge" and not self.keys:
            raise ValueError("sink.mode merge needs sink.keys, the columns that identify a row (e.g. [window_start, page])")
        if self.mode == "append" and (self.keys or self.rank or self.output_mode != "update"):
            raise ValueError("sink.keys, sink.rank and sink.output_mode only apply to sink.mode: merge")
        if self.quarantine and self.mode == "merge":
            raise ValueError("sink.quarantine only applies to sink.mode: append")
        return self


class TriggerConf(_Model):
    processing_time: Optional[str] = None
    available_now: bool = False
    # Continuous processing: map/filter-only queries from Kafka to Kafka, ~ms latency,
    # at-least-once; the value is the checkpoint interval.
    continuous: Optional[str] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "TriggerConf":
        if sum([bool(self.processing_time), self.available_now, bool(self.continuous)]) != 1:
            raise ValueError("set exactly one of trigger.processing_time (e.g. '5 seconds'), trigger.available_now: true "
                             "or trigger.continuous (e.g. '1 second')")
        for key in ("processing_time", "continuous"):
            value = getattr(self, key)
            if value and not INTERVAL.match(value.strip()):
                raise ValueError(f"trigger.{key} {value!r} is not an interval like '500 milliseconds', '5 seconds' or '1 minute'")
        return self

    def as_writer_kwargs(self) -> dict[str, Any]:
        if self.available_now:
            return {"availableNow": True}
        if self.continuous:
            return {"continuous": self.continuous}
        return {"processingTime": self.processing_time}


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
        from kappalake.alerts.notifiers import build_notifiers

        build_notifiers(v)  # ValueError names the entry and the problem
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
        from kappalake.quality.suites import check_shape

        for table, suite in v.items():
            if not TABLE_NAME.match(table):
                raise ValueError(f"suite for {table!r}: the key must be a table name like 'silver.clickstream'")
            check_shape(table, suite)  # ValueError naming the expectation and the problem
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


class PipelineConf(_Model):
    source: SourceConf
    # A transform is a name, or a mapping {name: ..., <parameter>: <value>, ...}.
    transforms: list[str | dict[str, Any]]
    sink: SinkConf
    trigger: TriggerConf


class Config(_Model):
    profile: str
    app_name: str = "kappalake"
    broker: BrokerConf = BrokerConf()
    kafka: KafkaConf = KafkaConf()
    topics: dict[str, TopicConf]
    spark: SparkConf = SparkConf()
    lake: LakeConf = LakeConf()
    producer: ProducerConf = ProducerConf()
    reference: ReferenceConf = ReferenceConf()
    privacy: PrivacyConf = PrivacyConf()
    alerts: AlertsConf = AlertsConf()
    quality: QualityConf = QualityConf()
    monitoring: MonitoringConf = MonitoringConf()
    maintenance: MaintenanceConf = MaintenanceConf()
    dashboard: DashboardConf = DashboardConf()
    pipelines: dict[str, PipelineConf]

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        for name, p in self.pipelines.items():
            for key, topic in (("source.topic", p.source.topic), ("sink.topic", p.sink.topic), ("sink.publish", p.sink.publish)):
                if topic is not None and topic not in self.topics:
                    raise ValueError(f"pipelines.{name}.{key} {topic!r} is not declared under topics "
                                     f"(declared: {', '.join(sorted(self.topics))})")
            if p.trigger.continuous and (p.source.topic is None or p.sink.topic is None):
                raise ValueError(f"pipelines.{name}.trigger.continuous needs a Kafka source.topic and a Kafka sink.topic "
                                 "(Spark's continuous processing runs Kafka -> Kafka only)")
        if self.kafka.sasl_mechanism == "AWS_MSK_IAM" and not any(":aws-msk-iam-auth:" in p
                                                                  for p in self.spark.extra_packages):
            raise ValueError("kafka.sasl_mechanism AWS_MSK_IAM needs the IAM login module on Spark's side: add "
                             "software.amazon.msk:aws-msk-iam-auth:<version> (e.g. 2.3.2) to spark.extra_packages")
        for table in self.maintenance.zorder:
            if table not in self.tables():
                raise ValueError(f"maintenance.zorder names {table!r}, which no pipeline writes "
                                 f"(tables: {', '.join(self.tables())})")
        if self.broker.mode == "embedded":
            local = f"127.0.0.1:{self.broker.port}"
            if self.kafka.bootstrap_servers not in (None, local, f"localhost:{self.broker.port}"):
                raise ValueError(
                    f"kafka.bootstrap_servers {self.kafka.bootstrap_servers!r} does not point at the embedded broker "
                    f"({local}); set broker.mode: external to use another cluster"
                )
            if self.kafka.security_protocol != "PLAINTEXT":
                raise ValueError("the embedded broker speaks PLAINTEXT on loopback; set broker.mode: external for SSL/SASL")
        elif not self.kafka.bootstrap_servers:
            raise ValueError("broker.mode is external, so kafka.bootstrap_servers is required (host:port[,host:port])")
        return self

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers or f"127.0.0.1:{self.broker.port}"

    def tables(self) -> list[str]:
        """Every table the configuration names: pipeline sinks, quarantines and reference dimensions."""
        sinks = {p.sink.table for p in self.pipelines.values() if p.sink.table}
        quarantines = {p.sink.quarantine for p in self.pipelines.values() if p.sink.quarantine}
        notifying = self.alerts.notifiers and any(p.sink.notify for p in self.pipelines.values())
        deliveries = {self.alerts.deliveries_table} if notifying else set()
        metrics = {self.quality.metrics_table} if quarantines or self.quality.suites else set()
        recorded = {self.monitoring.metrics_table, self.monitoring.lag_table}
        return sorted(sinks | quarantines | deliveries | metrics | recorded | set(self.reference.tables.values()))

    def topic_name(self, logical: str) -> str:
        return self.topics[logical].name or logical

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret masked (safe to print or log)."""
        data = self.model_dump(mode="json")
        data["kafka"]["sasl_password"] = "******" if self.kafka.sasl_password else None
        data["privacy"]["secret"] = "******" if self.privacy.secret else None
        for n in data["alerts"]["notifiers"]:  # webhook URLs and headers often carry tokens
            if "url" in n:
                n["url"] = re.sub(r"^(\w+://[^/?#]*).*", r"\1/******", str(n["url"]))
            if "headers" in n:
                n["headers"] = {k: "******" for k in n["headers"] or {}}
        # Property maps passed through as given: the broker's own (its listeners' JAAS user
        # passwords), Kafka clients', Spark's (e.g. spark.hadoop.fs.s3a.secret.key).
        for section, key in (("kafka", "options"), ("broker", "properties"), ("spark", "conf")):
            data[section][key] = {k: ("******" if SECRET_KEY.search(k) else v) for k, v in data[section][key].items()}
        return data


# ---------------------------------------------------------------------------------------
# loading

def default_conf_dir() -> Path:
    """``$KAPPALAKE_CONF_DIR``, else ``./conf``, else the checkout's ``conf/`` next to ``src/``."""
    env = os.environ.get("KAPPALAKE_CONF_DIR")
    if env:
        return Path(env)
    if Path("conf/base.yaml").is_file():
        return Path("conf")
    return Path(__file__).resolve().parent.parent / "conf"


def load_config(
    profile: str = "local",
    conf_dir: str | Path | None = None,
    extra_files: typing.Sequence[str | Path] = (),
    overrides: typing.Sequence[str] | typing.Mapping[str, Any] = (),
) -> Config:
    """Load, merge, interpolate and validate a profile; raise ConfigError on any problem."""
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    base = conf_dir / "base.yaml"
    if not base.is_file():
        raise ConfigError(f"no {base}: point --conf-dir or KAPPALAKE_CONF_DIR at the directory holding base.yaml")
    prof = conf_dir / f"{profile}.yaml"
    if not prof.is_file():
        available = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown profile {profile!r}: no {prof}; available profiles: {', '.join(available)}")
    merged: dict[str, Any] = {}
    for f in [base, prof, *map(Path, extra_files)]:
        merged = deep_merge(merged, _read_yaml(f))
    merged = deep_merge(merged, nest_overrides(overrides))
    merged["profile"] = profile
    _read_suites(merged, conf_dir)
    _check_secrets(merged)
    merged = _interpolate(merged, ())
    try:
        return Config.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, profile)) from None


def _read_suites(merged: dict[str, Any], conf_dir: Path) -> None:
    """Add the suites of ``quality.suites_dir`` (one ``<table>.yaml`` each) under ``quality.suites``."""
    quality = merged["quality"] = merged.get("quality") or {}
    rel = quality.get("suites_dir", "expectations")
    if not rel:
        return
    directory = Path(rel) if Path(rel).is_absolute() else conf_dir / rel
    if not directory.is_dir():
        if "suites_dir" in quality:
            raise ConfigError(f"quality.suites_dir: {directory} is not a directory (null: no suite files)")
        return
    suites = dict(quality.get("suites") or {})
    for f in sorted(directory.glob("*.yaml")):
        suites.setdefault(f.stem, _read_yaml(f))
    quality["suites"] = suites


def derive(cfg: Config, overrides: typing.Mapping[str, Any]) -> Config:
    """``cfg`` with dotted ``overrides`` applied (``{"lake.root": "/tmp/x"}``), validated again.

    Mappings merge as profile files do, so an override cannot empty one: use ``model_copy``.
    """
    try:
        return Config.model_validate(deep_merge(cfg.model_dump(), nest_overrides(overrides)))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, cfg.profile)) from None


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``b`` win, lists are replaced, not concatenated."""
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys at the top level, not {type(data).__name__}")
    return data


def nest_overrides(overrides: typing.Sequence[str] | typing.Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` or ``["a.b=1"]`` as the nested mapping a YAML file would hold."""
    items = overrides.items() if isinstance(overrides, typing.Mapping) else (_split_override(o) for o in overrides)
    tree: dict[str, Any] = {}
    for key, value in items:
        tree = deep_merge(tree, _nest(key, value))
    return tree


def _split_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value (e.g. broker.port=19092)")
    key, raw = item.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(_key_path(dotted)):
        out = {part: out}
    return out


def _key_path(dotted: str) -> list[str]:
    """Split a dotted override key along the model, keeping map keys that contain dots whole.

    ``spark.conf.spark.ui.enabled`` -> ``[spark, conf, spark.ui.enabled]``;
    ``pipelines.bronze_x.trigger.available_now`` -> one part per level.
    """
    parts = dotted.split(".")
    out: list[str] = []
    tp: Any = Config
    i = 0
    while i < len(parts):
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(parts[i])
            out.append(parts[i])
            i += 1
            if field is None:
                break
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            value_type = typing.get_args(tp)[1]
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                out.append(parts[i])
                i += 1
                tp = value_type
            else:
                out.append(".".join(parts[i:]))
                return out
        else:
            break
    return out + parts[i:]


def _check_secrets(data: dict[str, Any]) -> None:
    kafka = data.get("kafka") or {}
    candidates = {"kafka.sasl_password": kafka.get("sasl_password"),
                  "privacy.secret": (data.get("privacy") or {}).get("secret")}
    for k, v in (kafka.get("options") or {}).items():
        if SECRET_KEY.search(str(k)):
            candidates[f"kafka.options.{k}"] = v
    for key, value in candidates.items():
        if value is not None and not (isinstance(value, str) and ENV_REF.fullmatch(value.strip())):
            raise ConfigError(
                f"{key} holds a literal secret; secrets come only from the environment: "
                f"write it as ${{env:SOME_VARIABLE}} and export SOME_VARIABLE"
            )


def _interpolate(value: Any, path: tuple[str, ...], unset: list[tuple[str, str]] | None = None) -> Any:
    """``${env:...}`` references replaced by their values; every unset variable is named in one error."""
    top, unset = unset is None, [] if unset is None else unset
    if isinstance(value, dict):
        value = {k: _interpolate(v, (*path, str(k)), unset) for k, v in value.items()}
    elif isinstance(value, list):
        value = [_interpolate(v, (*path, str(i)), unset) for i, v in enumerate(value)]
    elif isinstance(value, str) and "${env:" in value:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is None:
                unset.append((".".join(path), name))
            return default or ""
        value = ENV_REF.sub(sub, value)
    if top and unset:
        refs = "; ".join(f"{key} refers to environment variable {name}" for key, name in unset)
        names = " ".join(dict.fromkeys(name for _, name in unset))
        raise ConfigError(f"{refs}, which {'is' if len(unset) == 1 else 'are'} not set: export {names}")
    return value


def format_validation_error(e: ValidationError, profile: str) -> str:
    lines = [f"invalid configuration (profile {profile!r}):"]
    for err in e.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(Config, loc[:-1])
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - unknown key '{key}'{hint}")
        elif kind == "missing":
            lines.append(f"  - missing required key '{key}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            lines.append(f"  - {key}: {msg}{shown}")
    return "\n".join(lines)


def _allowed_keys(model: Any, loc: tuple[str, ...]) -> list[str]:
    """Field names valid at ``loc`` inside ``model`` (following nested models and dict values)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [n for n in tp.model_fields if n != "profile"]
    return []


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _join(root: str, *parts: str) -> str:
    # Local relative paths are made absolute so Spark, Delta and the checkpoint agree on them.
    if "://" not in root and not root.startswith("/"):
        root = str(Path(root).resolve())
    return "/".join([root.rstrip("/"), *parts])
