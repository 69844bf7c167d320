"""Every class of bad configuration stops start-up with a message naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappalake.cli import main
from kappalake.config import load_config
from kappalake.errors import ConfigError
from kappalake.pipelines.plan import validate_pipelines

CONF = Path(__file__).resolve().parents[2] / "conf"


def err(overrides=None, profile="local", **kw) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(profile, CONF, overrides=overrides or {}, **kw)
    return str(e.value)


def test_shipped_profiles_are_valid(monkeypatch):
    cfg = load_config("local", CONF)
    assert cfg.bootstrap_servers == "127.0.0.1:9092"
    layers = {"bronze": 3, "silver": 3, "gold": 8, "alerts": 3}
    assert {layer: sum(n.startswith(layer + "_") for n in cfg.pipelines) for layer in layers} == layers
    order = validate_pipelines(cfg)  # each after what it reads
    depth = {n: i for i, n in enumerate(order)}
    assert depth["alerts_fast"] < depth["silver_telemetry"]  # reads Kafka
    assert depth["bronze_telemetry"] < depth["silver_telemetry"] < depth["alerts_telemetry"]
    assert max(depth[n] for n in order if n.startswith("silver_")) < min(depth[n] for n in order if n.startswith("gold_"))
    assert cfg.pipelines["alerts_fast"].trigger.continuous and cfg.pipelines["alerts_fast"].sink.topic == "alerts"
    assert cfg.redacted()["privacy"]["secret"] == "******"
    with pytest.raises(ConfigError, match="unknown pipeline 'silver_clikstream'; did you mean silver_clickstream"):
        validate_pipelines(cfg, ["silver_clikstream"])
    for var, value in {
        "KAPPALAKE_BOOTSTRAP_SERVERS": "b-1.msk:9096,b-2.msk:9096",
        "KAPPALAKE_KAFKA_USERNAME": "svc",
        "KAPPALAKE_KAFKA_PASSWORD": "s3cret",
        "KAPPALAKE_LAKE_ROOT": "s3://bucket/lake",
        "KAPPALAKE_CHECKPOINT_ROOT": "s3://bucket/checkpoints",
        "KAPPALAKE_PSEUDONYM_SECRET": "key",
    }.items():
        monkeypatch.setenv(var, value)
    emr = load_config("emr", CONF)
    assert emr.kafka.security_protocol == "SASL_SSL"
    assert emr.lake.table_path("bronze.clickstream") == "s3://bucket/lake/bronze/clickstream"
    assert emr.lake.checkpoint_path("bronze_telemetry") == "s3://bucket/checkpoints/bronze_telemetry"
    assert emr.privacy.secret.get_secret_value() == "key"
    monkeypatch.delenv("KAPPALAKE_PSEUDONYM_SECRET")
    with pytest.raises(ConfigError, match="privacy.secret refers to environment variable KAPPALAKE_PSEUDONYM_SECRET"):
        load_config("emr", CONF)
    # Every unset variable is named in one message, not one per run.
    monkeypatch.delenv("KAPPALAKE_LAKE_ROOT")
    with pytest.raises(ConfigError) as e:
        load_config("emr", CONF)
    assert "lake.root refers to environment variable KAPPALAKE_LAKE_ROOT" in str(e.value)
    assert str(e.value).endswith("are not set: export KAPPALAKE_LAKE_ROOT KAPPALAKE_PSEUDONYM_SECRET")


def test_unknown_key_names_key_and_allowed_keys():
    msg = err({"broker.prot": 1})
    assert "unknown key 'broker.prot'" in msg
    assert "port" in msg and "controller_port" in msg


def test_unknown_nested_pipeline_key():
    msg = err({"pipelines.bronze_clickstream.source.max_offset_per_trigger": 5})
    assert "unknown key 'pipelines.bronze_clickstream.source.max_offset_per_trigger'" in msg
    assert "max_offsets_per_trigger" in msg


def test_wrong_type_names_key():
    msg = err({"broker.port": "ninety"})
    assert "broker.port" in msg and "integer" in msg and "'ninety'" in msg


def test_out_of_range_value():
    assert "broker.port" in err({"broker.port": 80})


def test_bad_enum_lists_allowed_values():
    msg = err({"kafka.security_protocol": "TLS", "broker.mode": "external", "kafka.bootstrap_servers": "x:1"})
    assert "kafka.security_protocol" in msg and "SASL_SSL" in msg


def test_missing_required_value(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("pipelines:\n  bronze_extra:\n    transforms: [bronze_record]\n    sink: {table: bronze.extra}\n"
                     "    trigger: {available_now: true}\n")
    msg = err(extra_files=[extra])
    assert "missing required key 'pipelines.bronze_extra.source'" in msg


def test_trigger_needs_exactly_one_mode():
    msg = err({"pipelines.bronze_clickstream.trigger.available_now": True})
    assert "exactly one of trigger.processing_time" in msg
    assert "not an interval" in err({"pipelines.bronze_clickstream.trigger.processing_time": "soon"})
    assert "not an interval" in err({"pipelines.bronze_clickstream.trigger.processing_time": "500 ms"})  # Spark rejects 'ms'
    load_config("local", CONF, overrides={"pipelines.bronze_clickstream.trigger.processing_time": "500 milliseconds"})


def test_cli_rejects_bad_processing_time(capsys):
    assert main(["--conf-dir", str(CONF), "ingest", "--processing-time", "2 s"]) == 2
    assert "--processing-time" in capsys.readouterr().err


def test_pipeline_topic_must_be_declared():
    msg = err({"pipelines.bronze_clickstream.source.topic": "orders"})
    assert "pipelines.bronze_clickstream.source.topic 'orders' is not declared" in msg


def test_table_name_format():
    assert "layer.name" in err({"pipelines.bronze_clickstream.sink.table": "Bronze/Click"})
    assert "needs sink.keys" in err({"pipelines.gold_page_minute.sink.keys": []})
    assert "only apply to sink.mode: merge" in err({"pipelines.bronze_clickstream.sink.keys": ["session_id"]})
    assert "asc or desc" in err({"pipelines.gold_zone_occupancy.sink.rank.by": ["visitors downwards"]})


def test_embedded_broker_rejects_foreign_bootstrap():
    msg = err({"kafka.bootstrap_servers": "kafka.example:9092"})
    assert "broker.mode: external" in msg


def test_external_broker_requires_bootstrap():
    assert "kafka.bootstrap_servers is required" in err({"broker.mode": "external"})


def test_literal_secret_rejected():
    msg = err({"broker.mode": "external", "kafka.bootstrap_servers": "k:9096", "kafka.sasl_password": "hunter2"})
    assert "kafka.sasl_password holds a literal secret" in msg and "${env:" in msg
    msg = err({"broker.mode": "external", "kafka.bootstrap_servers": "k:9096",
               "kafka.options.sasl.jaas.config": "org.x required password=y;"})
    assert "kafka.options.sasl.jaas.config holds a literal secret" in msg


def test_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    msg = err({"broker.mode": "external", "kafka.bootstrap_servers": "${env:NOPE_NOT_SET}"})
    assert "kafka.bootstrap_servers" in msg and "NOPE_NOT_SET" in msg


def test_env_default_and_secret_masking(monkeypatch):
    monkeypatch.setenv("KL_TEST_PASSWORD", "pa55word")
    cfg = load_config("local", CONF, overrides={
        "broker.mode": "external",
        "kafka.bootstrap_servers": "${env:KL_UNSET_BOOTSTRAP:-k1:9096}",
        "kafka.security_protocol": "SASL_SSL",
        "kafka.sasl_mechanism": "SCRAM-SHA-512",
        "kafka.sasl_username": "svc",
        "kafka.sasl_password": "${env:KL_TEST_PASSWORD}",
    })
    assert cfg.bootstrap_servers == "k1:9096"
    assert cfg.kafka.sasl_password.get_secret_value() == "pa55word"
    assert "pa55word" not in repr(cfg) and "pa55word" not in str(cfg.redacted())


def test_property_maps_with_secret_looking_keys_are_masked(monkeypatch):
    """Broker properties (a SASL listener's JAAS users), Kafka client and Spark properties are
    passed through as given: `config show` masks those whose key looks secret."""
    monkeypatch.setenv("KL_TEST_PASSWORD", "pa55word")
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_svc="${env:KL_TEST_PASSWORD}";'
    cfg = load_config("local", CONF, overrides={
        "broker.properties.listener.name.sasl.plain.sasl.jaas.config": jaas,
        "broker.properties.log.retention.hours": "24",
        "spark.conf.spark.hadoop.fs.s3a.secret.key": "${env:KL_TEST_PASSWORD}",
        "kafka.options.ssl.key.password": "${env:KL_TEST_PASSWORD}",
    })
    assert cfg.broker.properties["listener.name.sasl.plain.sasl.jaas.config"].endswith('user_svc="pa55word";')
    shown = cfg.redacted()
    assert shown["broker"]["properties"] == {"listener.name.sasl.plain.sasl.jaas.config": "******",
                                             "log.retention.hours": "24"}
    assert shown["spark"]["conf"]["spark.hadoop.fs.s3a.secret.key"] == "******"
    assert shown["spark"]["conf"]["spark.sql.session.timeZone"] == "UTC"
    assert shown["kafka"]["options"]["ssl.key.password"] == "******" and "pa55word" not in str(shown)


def test_sasl_needs_credentials():
    msg = err({"broker.mode": "external", "kafka.bootstrap_servers": "k:9096", "kafka.security_protocol": "SASL_SSL"})
    assert "kafka.sasl_mechanism" in msg and "kafka.sasl_password" in msg


def test_unknown_profile_lists_available():
    msg = err(profile="prod")
    assert "unknown profile 'prod'" in msg and "local" in msg and "emr" in msg


def test_invalid_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("broker: [unclosed\n")
    assert "not valid YAML" in err(extra_files=[bad])


def test_property_maps_accept_yaml_scalars():
    cfg = load_config("local", CONF, overrides=["spark.conf.spark.ui.enabled=false", "topics.clickstream.config.retention.ms=60000"])
    assert cfg.spark.conf["spark.ui.enabled"] == "false"
    assert cfg.topics["clickstream"].config == {"retention.ms": "60000"}


def test_unknown_transform_fails_before_start():
    cfg = load_config("local", CONF, overrides={"pipelines.bronze_clickstream.transforms": ["bronze_record", "magic"]})
    with pytest.raises(ConfigError, match=r"pipelines.bronze_clickstream.transforms\[1\]: unknown transform 'magic'"):
        validate_pipelines(cfg)


def test_dedup_must_be_the_last_transform():
    cfg = load_config("local", CONF, overrides={"pipelines.silver_telemetry.transforms": [
        {"name": "parse_events", "topic": "telemetry"}, "dedup", "normalise"]})
    with pytest.raises(ConfigError, match=r"pipelines.silver_telemetry.transforms\[1\] \(dedup\) must be the last "
                                          r"transform.*move it to the end"):
        validate_pipelines(cfg, ["silver_telemetry"])


def test_cli_reports_config_error_with_exit_code_2(capsys):
    assert main(["--conf-dir", str(CONF), "--set", "broker.port=abc", "config", "validate"]) == 2
    out = capsys.readouterr().err
    assert "configuration error" in out and "broker.port" in out
    assert main(["--conf-dir", str(CONF), "config", "validate"]) == 0


def test_alert_sinks_and_continuous_trigger_are_checked():
    assert "set exactly one of sink.table" in err({"pipelines.alerts_fast.sink.table": "ops.x"})
    assert "pipelines.alerts_fast.sink.topic 'nope' is not declared under topics" in err(
        {"pipelines.alerts_fast.sink.topic": "nope"})
    assert "pipelines.alerts_telemetry.sink.publish 'nope' is not declared" in err(
        {"pipelines.alerts_telemetry.sink.publish": "nope"})
    msg = err({"pipelines.alerts_telemetry.trigger": {"continuous": "1 second", "processing_time": None}})
    assert "pipelines.alerts_telemetry.trigger.continuous needs a Kafka source.topic and a Kafka sink.topic" in msg
    assert "trigger.continuous 'often' is not an interval" in err({"pipelines.alerts_fast.trigger.continuous": "often"})


def test_notifier_entries_are_checked_at_load_and_redacted():
    assert "alerts.notifiers[1]: unknown type 'pager'" in err(
        {"alerts.notifiers": [{"type": "log"}, {"type": "pager"}]})
    cfg = load_config("local", CONF, overrides={"alerts.notifiers": [
        {"type": "webhook", "url": "https://hooks.example.com/T0/B1/secret?x=1", "headers": {"Authorization": "Bearer t"}}]})
    shown = cfg.redacted()["alerts"]["notifiers"][0]
    assert shown["url"] == "https://hooks.example.com/******" and shown["headers"] == {"Authorization": "******"}
    assert "ops.alert_deliveries" in cfg.tables() and "ops.alerts" in cfg.tables()
