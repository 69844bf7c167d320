"""Security settings reach Spark's Kafka source and kafka-python the same way; secrets stay out of print."""

from pathlib import Path

from kappalake.config import load_config
from kappalake.ingest.kafka_clients import python_client_kwargs, spark_source_options

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_sasl_ssl_pass_through(monkeypatch):
    monkeypatch.setenv("KL_PW", "pw\"q")
    cfg = load_config("local", CONF, overrides={
        "broker.mode": "external",
        "kafka.bootstrap_servers": "b1:9096,b2:9096",
        "kafka.security_protocol": "SASL_SSL",
        "kafka.sasl_mechanism": "SCRAM-SHA-512",
        "kafka.sasl_username": "svc",
        "kafka.sasl_password": "${env:KL_PW}",
        "kafka.ssl_cafile": "/etc/ca.pem",
        "kafka.options.client.dns.lookup": "use_all_dns_ips",
    })
    spec = cfg.pipeline("bronze_clickstream")
    opts = spark_source_options(spec.kafka, spec.source_topic, spec.source)
    assert opts["kafka.bootstrap.servers"] == "b1:9096,b2:9096"
    assert opts["kafka.security.protocol"] == "SASL_SSL"
    assert opts["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert opts["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="pw\\"q";'
    )
    assert opts["kafka.ssl.truststore.type"] == "PEM" and opts["kafka.ssl.truststore.location"] == "/etc/ca.pem"
    assert opts["kafka.client.dns.lookup"] == "use_all_dns_ips"
    assert opts["subscribe"] == "clickstream" and opts["failOnDataLoss"] == "true"
    assert opts["maxOffsetsPerTrigger"] == "200000" and opts["startingOffsets"] == "earliest"
    assert opts["kafka.isolation.level"] == "read_committed"  # aborted transactions stay out of the lake

    kw = python_client_kwargs(cfg.kafka_settings)
    assert kw["bootstrap_servers"] == ["b1:9096", "b2:9096"]
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "svc" and kw["sasl_plain_password"] == 'pw"q'
    assert kw["ssl_cafile"] == "/etc/ca.pem"


def test_plaintext_local_defaults():
    cfg = load_config("local", CONF, overrides={"broker.port": 19555, "topics.telemetry.name": "tele_x"})
    spec = cfg.pipeline("bronze_telemetry")
    opts = spark_source_options(spec.kafka, spec.source_topic, spec.source)
    assert opts["kafka.bootstrap.servers"] == "127.0.0.1:19555"
    assert opts["subscribe"] == "tele_x"
    assert not any(k.startswith("kafka.sasl") for k in opts)


MSK_IAM = {"broker.mode": "external", "kafka.bootstrap_servers": "b-1.msk.example:9098",
           "kafka.security_protocol": "SASL_SSL", "kafka.sasl_mechanism": "AWS_MSK_IAM"}


def test_msk_iam_pass_through():
    cfg = load_config("local", CONF, overrides={**MSK_IAM,
                                                "spark.extra_packages": ["software.amazon.msk:aws-msk-iam-auth:2.3.2"]})
    spec = cfg.pipeline("bronze_clickstream")
    opts = spark_source_options(spec.kafka, spec.source_topic, spec.source)
    assert opts["kafka.sasl.mechanism"] == "AWS_MSK_IAM"
    assert opts["kafka.sasl.jaas.config"] == "software.amazon.msk.auth.iam.IAMLoginModule required;"
    assert opts["kafka.sasl.client.callback.handler.class"] == "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
    kw = python_client_kwargs(cfg.kafka_settings)
    assert kw["sasl_mechanism"] == "AWS_MSK_IAM" and "sasl_plain_password" not in kw


def test_msk_iam_needs_its_login_module_and_tls():
    import pytest

    from kappalake.errors import ConfigError

    with pytest.raises(ConfigError, match=r"spark\.extra_packages"):
        load_config("local", CONF, overrides=MSK_IAM)
    with pytest.raises(ConfigError, match="SASL_SSL"):
        load_config("local", CONF, overrides={**MSK_IAM, "kafka.security_protocol": "SASL_PLAINTEXT",
                                              "spark.extra_packages": ["software.amazon.msk:aws-msk-iam-auth:2.3.2"]})
    with pytest.raises(ConfigError, match="extra_packages"):
        load_config("local", CONF, overrides={"spark.extra_packages": ["not a coordinate"]})


def test_plan_redaction_hides_secret_options_and_jaas_passwords():
    """What the session's spark.sql.redaction.string.regex removes from plan text (Java and Python
    regexes agree on these constructs): the Kafka source's v1 relation prints its options as given."""
    import re

    from kappalake.session import PLAN_REDACTION

    plan = ('HashMap(fetchOffset.numRetries -> 10, kafka.sasl.jaas.config -> org.apache.kafka.common.security.plain.'
            'PlainLoginModule required username="svc" password="p,w\\"q)";, subscribe -> clicks, '
            'kafka.ssl.key.password -> k3y) [kafka.security.protocol=SASL_SSL, kafka.ssl.truststore.password=ts]'
            ' jaas: x required password = "inline"')
    shown = re.sub(PLAN_REDACTION, "*********(redacted)", plan)
    assert not any(s in shown for s in ('p,w', 'q)"', "k3y", "ts]", "inline")), shown
    assert "subscribe -> clicks" in shown and "fetchOffset.numRetries -> 10" in shown
    assert "kafka.security.protocol=SASL_SSL" in shown
