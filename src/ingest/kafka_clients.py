"""Kafka client settings derived from the ``kafka`` section (as resolved by
``Config.kafka_settings``): kafka-python kwargs and Spark source and sink options."""

from __future__ import annotations

from typing import Any

from kappalake.config import KafkaConf, SourceConf

_JAAS_MODULE = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def python_client_kwargs(k: KafkaConf) -> dict[str, Any]:
    """Connection and security kwargs for kafka-python clients (producer, consumer, admin)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": _servers(k).split(","),
        "security_protocol": k.security_protocol,
        "client_id": k.client_id or "kappalake",
        # The first connection waits as long as a stream would for an unreachable Kafka, 30 s at most.
        "bootstrap_timeout_ms": min(30_000, max(1_000, k.outage_wait_s * 1000)),
    }
    if k.sasl_mechanism == "AWS_MSK_IAM":
        kwargs["sasl_mechanism"] = k.sasl_mechanism  # kafka-python signs with botocore's credentials
    elif k.sasl_mechanism:
        kwargs["sasl_mechanism"] = k.sasl_mechanism
        kwargs["sasl_plain_username"] = k.sasl_username
        kwargs["sasl_plain_password"] = k.sasl_password.get_secret_value() if k.sasl_password else None
    if k.ssl_cafile:
        kwargs["ssl_cafile"] = k.ssl_cafile
    return kwargs


def _servers(k: KafkaConf) -> str:
    if not k.bootstrap_servers:
        raise ValueError("Kafka settings without bootstrap servers: pass Config.kafka_settings, not Config.kafka")
    return k.bootstrap_servers


def spark_kafka_options(k: KafkaConf) -> dict[str, str]:
    """``kafka.*`` options for Spark's Kafka source and sink (connection and security)."""
    opts = {"kafka.bootstrap.servers": _servers(k), "kafka.security.protocol": k.security_protocol}
    if k.sasl_mechanism == "AWS_MSK_IAM":
        opts["kafka.sasl.mechanism"] = k.sasl_mechanism
        opts["kafka.sasl.jaas.config"] = "software.amazon.msk.auth.iam.IAMLoginModule required;"
        opts["kafka.sasl.client.callback.handler.class"] = "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
    elif k.sasl_mechanism and k.sasl_username and k.sasl_password:
        user = k.sasl_username.replace('"', '\\"')
        pwd = k.sasl_password.get_secret_value().replace('"', '\\"')
        opts["kafka.sasl.mechanism"] = k.sasl_mechanism
        opts["kafka.sasl.jaas.config"] = f'{_JAAS_MODULE[k.sasl_mechanism]} required username="{user}" password="{pwd}";'
    if k.ssl_cafile:
        opts["kafka.ssl.truststore.type"] = "PEM"
        opts["kafka.ssl.truststore.location"] = k.ssl_cafile
    opts.update({f"kafka.{key}": value for key, value in k.options.items()})
    return opts


def write_records(records: Any, k: KafkaConf, topic: str) -> None:
    """Send a static DataFrame of ``value`` (and optional ``key``, ``headers``) columns to Kafka
    ``topic`` (its name on the cluster) with Spark's Kafka sink: at-least-once."""
    records.write.format("kafka").options(**spark_kafka_options(k)).option("topic", topic).save()


def spark_source_options(k: KafkaConf, topic: str, source: SourceConf) -> dict[str, str]:
    """All options for ``spark.readStream.format("kafka")`` for one pipeline source reading
    ``topic`` (its name on the cluster)."""
    opts = spark_kafka_options(k)
    opts.update(
        {
            "subscribe": topic,
            "startingOffsets": source.starting_offsets,
            "failOnDataLoss": str(source.fail_on_data_loss).lower(),
            "includeHeaders": "true",
            "kafka.isolation.level": k.isolation_level,
        }
    )
    opts.update(outage_options(k))
    if source.max_offsets_per_trigger:
        opts["maxOffsetsPerTrigger"] = str(source.max_offsets_per_trigger)
    if source.min_partitions:
        opts["minPartitions"] = str(source.min_partitions)
    return opts


def outage_options(k: KafkaConf) -> dict[str, str]:
    """Source options that make a stream wait about ``kafka.outage_wait_s`` for an unreachable
    Kafka: the driver's offset lookups (an admin call timing out after ``api`` ms, retried) and
    the executors' fetches (a poll timeout) both give up only after that long."""
    wait_ms = k.outage_wait_s * 1000
    api = min(30_000, max(5_000, wait_ms))
    interval = 1_000
    attempts = max(1, -(-wait_ms // (api + interval)))
    # The admin client refuses an api timeout below its request timeout (30 s by default).
    opts = {"kafka.default.api.timeout.ms": str(api), "kafka.request.timeout.ms": str(min(api, 30_000)),
            "fetchOffset.numRetries": str(attempts),
            "fetchOffset.retryIntervalMs": str(interval),
            "kafkaConsumer.pollTimeoutMs": str(max(120_000, wait_ms))}  # never below Spark's default
    # Explicit kafka.options win over the derived ones.
    return {key: v for key, v in opts.items() if key.removeprefix("kafka.") not in k.options}
