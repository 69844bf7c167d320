"""SparkSession per profile: Delta enabled, Kafka connector resolved, sized for the machine."""

from __future__ import annotations

import os
import subprocess
import sys

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from kappalake.config import Config

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# Parts of plan text (explain, the SQL tab's plan descriptions) that give a secret away, replaced
# by Spark with "*********(redacted)" (spark.sql.redaction.string.regex):
_QUOTED = r'"(?:[^"\\]|\\.)*"'  # a double-quoted string, backslash escapes included
PLAN_REDACTION = "(?i)" + "|".join([
    # Options with a secret-looking key, as the Kafka source's untouched option map prints them
    # (kafka.sasl.jaas.config -> ... password="..."; kafka.ssl.key.password=...): up to the next
    # separator outside quotes.
    rf"[\w.]*(?:password|secret|token|jaas|credential)[\w.]*(?:=| -> )(?:{_QUOTED}|[^,\])}}\"])*",
    # A password or secret inside a JAAS value quoted anywhere else.
    rf"(?:password|secret|token)\w*\s*=\s*{_QUOTED}",
])


# Warnings Spark logs about what kappalake does on purpose, once per MERGE or query start; with
# spark.log_level WARN they would bury the job's own output.
QUIET_LOGGERS = (
    # Delta's MERGE materialises its source with localCheckpoint() and unpersists it after the
    # commit, which Spark 4 warns about (SPARK-48928).
    "org.apache.spark.rdd.MapPartitionsRDD",
    # AQE is on for batch work (reprocess, MERGE, BI queries); streaming plans run without it.
    "org.apache.spark.sql.execution.streaming.ResolveWriteToStream",
    # With 16 MiB row groups (conf/base.yaml) Parquet's column buffers outgrow three row groups
    # on wide batches, and it logs a ~230-line dump of them each time (seen in `kappalake bench`).
    "org.apache.parquet.hadoop.InternalParquetRecordWriter",
)


def kafka_connector_package(cfg: Config) -> str:
    return f"org.apache.spark:spark-sql-kafka-0-10_2.13:{cfg.spark.kafka_connector_version}"


def get_spark(cfg: Config, app_name: str | None = None) -> SparkSession:
    """Return the active session or build one for ``cfg``'s profile.

    ``spark.packages: true`` adds the Kafka connector and the Delta jar matching the
    installed delta-spark to ``spark.jars.packages`` (ignored when a JVM already runs, e.g.
    under spark-submit, which resolves ``--packages`` itself).
    """
    # Python workers must use this interpreter, or they may start a python without our packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name or cfg.app_name)
    # Under spark-submit (it hands Python the running JVM's gateway) its --master decides: the
    # profile's spark.master is for jobs started from Python alone.
    if cfg.spark.master and "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(cfg.spark.master)
    settings = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        # pyspark 4.0's grouped-state serializer concatenates empty frames, and pandas warns
        # about it on every state update; the warning is about pandas' future, not our data.
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning",
        **cfg.spark.conf,
    }
    # Spark redacts option maps by key and value (spark.redaction.regex) but not every plan text:
    # the Kafka source's v1 relation prints its options as given, and literals print as they are.
    own = settings.get("spark.sql.redaction.string.regex")
    settings["spark.sql.redaction.string.regex"] = f"{PLAN_REDACTION}|{own}" if own else PLAN_REDACTION
    if "spark.sql.warehouse.dir" not in settings and "://" not in cfg.lake.root:
        # The session catalog's databases (gold, silver, ...: kappalake.lake.catalog) next to the lake.
        settings["spark.sql.warehouse.dir"] = os.path.abspath(os.path.join(cfg.lake.root, "_catalog"))
    for key, value in settings.items():
        builder = builder.config(key, value)
    if cfg.spark.packages:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder, extra_packages=[kafka_connector_package(cfg),
                                                                          *cfg.spark.extra_packages])
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    if cfg.spark.log_level == "WARN":
        log4j = spark.sparkContext._jvm.org.apache.logging.log4j
        try:
            for name in QUIET_LOGGERS:
                log4j.core.config.Configurator.setLevel(name, log4j.Level.ERROR)
        except (TypeError, Py4JError):  # a JVM without log4j 2's core: its logging stays as configured
            pass
    return spark


def stop_spark(spark: SparkSession, timeout_s: float = 60) -> None:
    """Stop ``spark`` and, when this process launched its JVM, let the JVM exit too.

    Spark's Kafka writer keeps its producers in a JVM-wide cache that ``stop()`` leaves open;
    with the broker stopped next, they would log a reconnect warning a second until the JVM
    exits. A later :func:`get_spark` starts a new JVM.
    """
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if proc is None or proc.stdin is None:  # spark-submit's JVM, or one attached from elsewhere
        return
    gateway.shutdown()
    proc.stdin.close()  # pyspark's gateway server exits at end of input
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:  # still shutting down: what is left is killed, not waited for
        proc.kill()
        proc.wait()
    SparkContext._gateway = None
    SparkContext._jvm = None
