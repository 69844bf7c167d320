"""Sessions: the benign warnings quieted at WARN; stop_spark lets the JVM pyspark launched exit,
Kafka producers and all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import CONF_DIR, as_yaml, config_values

SCRIPT = textwrap.dedent("""
    import sys
    from pyspark import SparkContext
    from kappalake.config import load_config
    from kappalake.ingest.kafka_clients import spark_kafka_options
    from kappalake.ingest.topics import ensure_topics
    from kappalake.session import get_spark, stop_spark

    cfg = load_config("local", sys.argv[1], extra_files=[sys.argv[2]])
    ensure_topics(cfg.kafka_settings, cfg.topic_specs(["alerts"]))
    spark = get_spark(cfg)
    # Spark's Kafka writer caches its producer in the JVM: stop() alone leaves it connected.
    (spark.createDataFrame([("k", "v")], "key string, value string").write.format("kafka")
     .options(**spark_kafka_options(cfg.kafka_settings)).option("topic", cfg.topic_name("alerts")).save())
    jvm = SparkContext._gateway.proc
    stop_spark(spark)
    print("jvm exit code", jvm.poll(), flush=True)
    spark = get_spark(cfg)  # a new JVM
    print("rows after restart", spark.range(3).count(), flush=True)
    stop_spark(spark)
""")


@pytest.mark.process
def test_stop_spark_ends_the_jvm_it_launched_and_a_new_session_starts(broker_conf, tmp_path):
    conf = as_yaml(config_values(broker_conf, tmp_path), tmp_path / "c.yaml")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(CONF_DIR), str(conf)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "jvm exit code 0" in proc.stdout, proc.stdout
    assert "rows after restart 3" in proc.stdout, proc.stdout


def test_warnings_about_what_kappalake_does_on_purpose_are_quiet_at_warn(spark):
    from kappalake.session import QUIET_LOGGERS

    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    assert {name: log4j.LogManager.getLogger(name).getLevel().toString() for name in QUIET_LOGGERS} == {
        name: "ERROR" for name in QUIET_LOGGERS}
    assert log4j.LogManager.getRootLogger().getLevel().toString() == "WARN"
