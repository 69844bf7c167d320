"""How long a stream waits for an unreachable Kafka, and what a failure of the environment says."""

import os
from pathlib import Path

import pytest

from kappalake.config import load_config
from kappalake.ingest.kafka_clients import spark_source_options
from kappalake.ops.chaos import Kill, ScenarioResult, summary_table
from kappalake.ops.chaos_job import ConfigSource
from kappalake.ops.consistency import Check
from kappalake.pipelines.runner import _advice

CONF = Path(__file__).resolve().parents[2] / "conf"


def _source_options(**overrides):
    cfg = load_config("local", CONF, overrides=overrides)
    spec = cfg.pipeline("bronze_clickstream")
    return spark_source_options(spec.kafka, spec.source_topic, spec.source)


def test_outage_wait_becomes_offset_lookup_retries():
    opts = _source_options()  # default: 300 s
    api, attempts = int(opts["kafka.default.api.timeout.ms"]), int(opts["fetchOffset.numRetries"])
    interval = int(opts["fetchOffset.retryIntervalMs"])
    assert 300_000 <= attempts * (api + interval) < 300_000 + api + interval
    assert int(opts["kafkaConsumer.pollTimeoutMs"]) == 300_000

    quick = _source_options(**{"kafka.outage_wait_s": 0})
    assert quick["fetchOffset.numRetries"] == "1" and quick["kafka.default.api.timeout.ms"] == "5000"
    assert quick["kafka.request.timeout.ms"] == "5000"  # Kafka's admin client rejects one above the api timeout
    assert opts["kafka.request.timeout.ms"] == "30000"
    assert quick["kafkaConsumer.pollTimeoutMs"] == "120000"  # never below Spark's own default


def test_explicit_kafka_options_win_over_the_derived_ones():
    opts = _source_options(**{"kafka.options.default.api.timeout.ms": "90000"})
    assert opts["kafka.default.api.timeout.ms"] == "90000"


def test_environment_failures_say_what_happened_and_that_a_restart_is_safe():
    cfg = load_config("local", CONF, overrides={"broker.port": 19600, "lake.root": "/data/lake"})
    full = _advice(cfg.pipeline("silver_clickstream"),
                   "[TASK_WRITE_FAILED] ...\nCaused by: java.io.IOException: No space left on device")
    assert "filesystem of the lake or checkpoints is full" in full and "/data/lake/silver/clickstream" in full
    assert "resumes from its checkpoint" in full
    denied = _advice(cfg.pipeline("bronze_clickstream"), "java.nio.file.AccessDeniedException: x: Operation not permitted")
    assert "no write access" in denied
    kafka = _advice(cfg.pipeline("bronze_clickstream"),
                    "org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment. Call: listNodes")
    assert "Kafka was unreachable" in kafka and "127.0.0.1:19600" in kafka and "kafka.outage_wait_s" in kafka
    assert _advice(cfg.pipeline("bronze_clickstream"), "AnalysisException: column x not found") == ""


def test_the_job_process_gets_the_same_configuration(tmp_path):
    src = ConfigSource("local", str(CONF), [str(tmp_path / "x.yaml")], ["broker.port=19601"])
    argv = src.argv({"lake.root": "/l"})
    assert argv == ["--profile", "local", "--conf-dir", str(CONF), "--config", str(tmp_path / "x.yaml"),
                    "--set", "broker.port=19601", "--set", "lake.root=/l"]


def test_summary_counts_duplicates_and_losses_across_layers():
    r = ScenarioResult("kills", True, 12.0, {"clickstream": 10, "telemetry": 5}, checks=[
        Check("bronze", "bronze.clickstream", True, "", {"rows": 10, "duplicates": 0, "missing": 0}),
        Check("silver", "silver.clickstream", False, "", {"rows": 8, "quarantined": 1, "resends_dropped": 0,
                                                          "duplicate_events": 1, "lost": 1}),
        Check("delta", "silver.clickstream", True, "")], kills=[Kill(1, "offsets", "x", "1", True, 3.0)])
    line = summary_table([r]).splitlines()[1].split()
    assert line[:9] == ["kills", "ok", "15", "10", "8", "1", "0", "1", "1"]


def test_a_failed_spark_call_in_a_batch_writer_reports_sparks_error_and_root_cause():
    from kappalake.pipelines.runner import _failure

    # Shape of what a foreachBatch writer's failed save() gives StreamingQueryException (trimmed).
    message = "\n".join([
        "py4j.Py4JException: An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):",
        '  File "runner.py", line 1, in write_batch',
        "py4j.protocol.Py4JJavaError: An error occurred while calling o7002.save.",
        ": org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to file:/lake/q. SQLSTATE: 58030",
        "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.taskFailedWhileWritingRowsError(QueryExecutionErrors.scala:772)",
        "Caused by: org.apache.hadoop.fs.FSError: java.io.IOException: No space left on device",
        "Caused by: java.io.IOException: No space left on device",
    ])
    assert _failure(message) == ("org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to "
                                 "file:/lake/q. SQLSTATE: 58030 (root cause: java.io.IOException: No space left on device)")
    python = "pyspark.errors.StreamingQueryException: [STREAM_FAILED] x\nkappalake.errors.QualityGateError: rule y"
    assert _failure(python).endswith("kappalake.errors.QualityGateError: rule y")


def test_kafka_unreachable_is_one_line_naming_what_to_do(tmp_path, capsys, monkeypatch):
    import time

    import kappalake.session

    from kappalake.cli import main
    from tests.conftest import free_port

    port = free_port()  # nothing listens there
    args = ["--conf-dir", str(CONF), "--set", f"broker.port={port}", "--set", f"broker.data_dir={tmp_path}"]
    # The embedded broker not running: every command that needs Kafka says so at once (a stream
    # would otherwise wait kafka.outage_wait_s for it).
    began = time.monotonic()
    for command in (["topics", "list"], ["produce", "clickstream", "--count", "5"], ["alerts", "tail", "--max", "1"],
                    ["ingest", "--pipeline", "bronze_clickstream"]):
        assert main([*args, *command]) == 1, command
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        assert f"no Kafka broker answers on 127.0.0.1:{port}" in err and "`kappalake broker start`" in err, err
    assert time.monotonic() - began < 10
    # An external cluster that does not answer: kafka-python's error, in one line, and what to check.
    external = ["--set", "broker.mode=external", "--set", f"kafka.bootstrap_servers=127.0.0.1:{port}",
                "--set", "kafka.outage_wait_s=2"]  # how long clients wait for it (30 s at most)
    assert main(["--conf-dir", str(CONF), *external, "topics", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"Kafka at 127.0.0.1:{port} did not answer (KafkaTimeoutError: Unable to bootstrap" in err
    assert "check kafka.bootstrap_servers" in err
    # ingest too, before any Spark starts: the outage wait is for streams that have connected.
    monkeypatch.setattr(kappalake.session, "get_spark", lambda *a, **k: pytest.fail("Spark started"))
    began = time.monotonic()
    assert main(["--conf-dir", str(CONF), *external, "ingest", "--pipeline", "bronze_clickstream"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"Kafka at 127.0.0.1:{port} did not answer (KafkaTimeoutError: Unable to bootstrap" in err
    assert time.monotonic() - began < 10


@pytest.mark.process  # the pipe to a reader that has gone is the point
def test_a_reader_that_leaves_the_pipe_gets_no_traceback():
    import subprocess
    import sys

    # `kappalake query --list | head -0`: the reader closes before the first line is written. The
    # output is short, so it waits in stdout's buffer (unbuffered, as PYTHONUNBUFFERED makes it,
    # the first print fails instead): both ways end the same.
    cmd = [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF), "query", "--list"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for extra in ({}, {"PYTHONUNBUFFERED": "1"}):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**env, **extra})
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141 and err == "", (extra, err)  # 128 + SIGPIPE, as a shell reports it


def test_a_broken_pipe_that_is_not_stdout_is_not_hidden(monkeypatch, capsys):
    import kappalake.cli.reading
    from kappalake.cli import main

    def child_gone(*_a: object) -> int:
        raise BrokenPipeError("a child process's pipe")

    monkeypatch.setattr(kappalake.cli.reading, "cmd_query", child_gone)
    with pytest.raises(BrokenPipeError, match="child process"):
        main(["--conf-dir", str(CONF), "query", "--list"])
