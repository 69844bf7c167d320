"""Checks a command makes before it starts: Kafka there to talk to."""

from __future__ import annotations

from kappalake.config import Config


def kafka_advice(cfg: Config) -> str:
    if cfg.broker.mode == "embedded":
        return "start the embedded broker with `kappalake broker start` (`kappalake broker status` shows it)"
    return ("check kafka.bootstrap_servers, that the cluster is up and reachable from here, and "
            "kafka.security_protocol and its credentials")


def require_kafka(cfg: Config, connect: bool = False) -> None:
    """Fail at once, naming what to do, when Kafka is not there at start-up: the embedded broker
    not running, or (``connect``) an external cluster that does not answer within 10 s. Streams
    wait ``kafka.outage_wait_s`` only for an outage after they have connected."""
    from kappalake.errors import BrokerError
    from kappalake.ingest.broker import LocalBroker

    if cfg.broker.mode == "embedded" and not LocalBroker(cfg.broker).answers():
        raise BrokerError(f"no Kafka broker answers on {cfg.bootstrap_servers} (broker.mode: embedded): "
                          f"{kafka_advice(cfg)}")
    if cfg.broker.mode == "external" and connect:
        from kafka import KafkaAdminClient

        from kappalake.ingest.kafka_clients import python_client_kwargs

        kwargs = python_client_kwargs(cfg.kafka_settings)  # also proves the security settings and credentials
        kwargs["bootstrap_timeout_ms"] = min(10_000, kwargs["bootstrap_timeout_ms"])
        KafkaAdminClient(**kwargs).close()  # KafkaError -> one line in main()
