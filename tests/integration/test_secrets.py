"""Secrets end to end: Kafka SASL settings work through config alone, and neither the SASL password
nor the pseudonymisation key shows up anywhere a person or a file could see it.

A private broker gets a SASL_PLAINTEXT listener (mechanism PLAIN, one JAAS user) next to the
PLAINTEXT listener its own readiness probe and inter-broker traffic use; the job is configured as
for any external cluster (``broker.mode: external``) and only ever talks to the SASL listener.
Both secrets come from the environment (``${env:VAR}``), as config requires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kappalake.config import load_config, nest_overrides
from kappalake.errors import ConfigError
from kappalake.transforms.privacy import PAD_COLUMNS
from tests.conftest import CONF_DIR, REPO, broker_overrides, config_values, free_port

PASSWORD_VAR = "KL_TEST_SASL_PASSWORD"
KEY_VAR = "KL_TEST_PSEUDONYM_KEY"
USER = "kl-svc"
EVENTS = 300
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
REDACTED = b"*********(redacted)"
# A PySpark driver's console shows only what is at least as severe as the level of the logger
# org.apache.spark.api.python.PythonGatewayServer (WARN unless configured; setLogLevel("INFO")
# does not lower it): with this profile everything Spark and the Kafka clients log at INFO
# reaches the captured output.
LOG4J_INFO = """\
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = info
rootLogger.level = info
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
"""


# -- what a leak looks like -------------------------------------------------------------------

def leak_forms(name: str, secret: str, hmac_key: bool = False) -> dict[str, bytes]:
    """Spellings of ``secret`` to look for. Hex forms are lower case and matched ignoring case.

    For an HMAC key also the key-derived part of the inner and outer pads: each is the key XOR
    a constant, so a pad in a query plan is the key in plain sight.
    """
    raw = secret.encode()
    forms = {name: raw, f"{name} (hex)": raw.hex().encode(), f"{name} (base64)": base64.b64encode(raw).rstrip(b"=")}
    if hmac_key:
        forms[f"{name} (HMAC inner pad)"] = bytes(b ^ 0x36 for b in raw).hex().encode()
        forms[f"{name} (HMAC outer pad)"] = bytes(b ^ 0x5C for b in raw).hex().encode()
    return forms


def find_leaks(data: bytes, forms: dict[str, bytes]) -> list[str]:
    lowered = data.lower()
    return [name for name, form in forms.items() if form in data or ("hex" in name or "pad" in name) and form in lowered]


def _values(v: Any) -> Iterator[bytes]:
    if isinstance(v, (bytes, bytearray)):
        yield bytes(v)
    elif isinstance(v, str):
        yield v.encode()
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from _values(k)
            yield from _values(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _values(x)
    elif v is not None:
        yield str(v).encode()


def renderings(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every readable rendering of a file: its bytes; for Parquet also its decoded values (pages
    are compressed); for zip archives (RocksDB state checkpoints) each member's bytes."""
    data = path.read_bytes()
    yield str(path), data
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        yield f"{path} (decoded)", b"\n".join(_values(table.to_pylist())) + str(table.schema).encode()
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                yield f"{path}!{member}", z.read(member)


def scan_tree(root: Path, forms: dict[str, bytes]) -> tuple[int, dict[str, list[str]]]:
    """Files under ``root``, and per rendering that holds a form, which forms it holds."""
    files, leaks = 0, {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        files += 1
        for where, data in renderings(path):
            if found := find_leaks(data, forms):
                leaks[where] = found
    return files, leaks


# -- the job, run as its operators run it -----------------------------------------------------

def kappalake(yaml_file: Path, *args: str, log: Path, env: dict[str, str], wait: bool = True,
              options: tuple[str, ...] = ()) -> subprocess.Popen | subprocess.CompletedProcess:
    """``python -m kappalake`` with all its output (stdout, stderr, Spark's log4j) going to ``log``."""
    cmd = [sys.executable, "-m", "kappalake", "--conf-dir", str(CONF_DIR), "--config", str(yaml_file), *options, *args]
    with open(log, "wb") as out:
        if not wait:  # own session: the test can stop it (and its JVM) by its process group
            return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        return subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=300)


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read()


def spark_ui_capture(ui: str) -> dict[str, bytes]:
    """What the Spark UI of a running application shows: the environment listing, every SQL
    execution with its plan description and plan graph, jobs, stages and the streaming tab."""
    [app] = json.loads(http_get(f"{ui}/api/v1/applications"))
    api = f"{ui}/api/v1/applications/{app['id']}"
    pages = {
        "environment (REST)": http_get(f"{api}/environment"),
        "environment (page)": http_get(f"{ui}/environment/"),
        "sql (REST)": http_get(f"{api}/sql?details=true&planDescription=true&offset=0&length=100000"),
        "sql (page)": http_get(f"{ui}/SQL/"),
        "jobs (REST)": http_get(f"{api}/jobs"),
        "stages (REST)": http_get(f"{api}/stages"),
        "streaming (page)": http_get(f"{ui}/StreamingQuery/"),
    }
    for ex in json.loads(pages["sql (REST)"]):  # the graph's nodes carry each operator's description
        pages[f"sql execution {ex['id']} (page)"] = http_get(f"{ui}/SQL/execution/?id={ex['id']}")
    return pages


def delta_frame(path: str):  # noqa: ANN201 - a pandas DataFrame, read with delta-rs (no JVM)
    from deltalake import DeltaTable

    return DeltaTable(path).to_pandas()


def delta_rows(path: str) -> int:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path).to_pyarrow_dataset().count_rows()
    except TableNotFoundError:
        return 0


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:]


@pytest.fixture
def secret_values(monkeypatch) -> dict[str, str]:
    """Distinctive random secrets in the environment, as an operator would export them."""
    values = {PASSWORD_VAR: f"klSaslPw{secrets.token_hex(12)}", KEY_VAR: f"klPseudoKey{secrets.token_hex(12)}"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def sasl_client_values(bootstrap: str) -> dict[str, Any]:
    """The job's side of SASL: nothing but config, the password from the environment."""
    return {
        "broker.mode": "external",
        "kafka.bootstrap_servers": bootstrap,
        "kafka.security_protocol": "SASL_PLAINTEXT",
        "kafka.sasl_mechanism": "PLAIN",
        "kafka.sasl_username": USER,
        "kafka.sasl_password": f"${{env:{PASSWORD_VAR}}}",
        "privacy.secret": f"${{env:{KEY_VAR}}}",
    }


def write_yaml(values: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(nest_overrides(values)))  # map keys with dots stay whole
    return path


@pytest.mark.process  # a SASL broker of its own, the job and the CLI
@pytest.mark.broker
def test_sasl_through_config_alone_and_no_secret_anywhere(tmp_path, secret_values):
    password, key = secret_values[PASSWORD_VAR], secret_values[KEY_VAR]
    forms = {**leak_forms("SASL password", password), **leak_forms("pseudonymisation key", key, hmac_key=True)}
    logs, spark_conf = tmp_path / "logs", tmp_path / "spark-conf"
    logs.mkdir()
    spark_conf.mkdir()
    (spark_conf / "log4j2.properties").write_text(LOG4J_INFO)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SPARK_CONF_DIR": str(spark_conf)}
    no_ui = ("--set", "spark.conf.spark.ui.enabled=false")

    broker = broker_overrides(tmp_path / "broker")
    sasl_port, ui_port = free_port(), free_port()
    advertised = f"PLAINTEXT://127.0.0.1:{broker['broker.port']},SASL://127.0.0.1:{sasl_port}"
    server = {  # the broker's side: a SASL_PLAINTEXT listener with one PLAIN user, its password from the env
        "listeners": f"{advertised},CONTROLLER://127.0.0.1:{broker['broker.controller_port']}",
        "advertised.listeners": advertised,
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl.plain.sasl.jaas.config": f'{PLAIN_MODULE} required user_{USER}="${{env:{PASSWORD_VAR}}}";',
    }
    values = config_values({**broker, **{f"broker.properties.{k}": v for k, v in server.items()}}, tmp_path, **{
        **sasl_client_values(f"127.0.0.1:{sasl_port}"),
        "spark.log_level": "INFO",
        "spark.conf.spark.ui.enabled": "true",
        "spark.conf.spark.ui.port": str(ui_port),
        "spark.conf.spark.driver.memory": "1g",
        "monitoring.flush_s": 2.0,  # what `status` reads is recorded every 2 s
    })
    yaml_file = write_yaml(values, tmp_path / "secrets.yaml")
    assert password not in yaml_file.read_text() and key not in yaml_file.read_text()
    cfg = load_config("local", CONF_DIR, extra_files=[yaml_file])
    silver = cfg.lake.table_path("silver.clickstream")

    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from kappalake.ingest.broker import LocalBroker

    reference = kappalake(yaml_file, "reference", "create", log=logs / "reference.log", env=env, wait=False,
                          options=no_ui)
    local = LocalBroker(cfg.broker)
    ingest = status = None
    try:
        local.start()
        # The listener does authenticate: a wrong password gets nowhere.
        with pytest.raises(KafkaError):
            KafkaAdminClient(bootstrap_servers=[f"127.0.0.1:{sasl_port}"], security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username=USER, sasl_plain_password="not-it",
                             bootstrap_timeout_ms=5000).close()

        for args in (["topics", "create"], ["produce", "clickstream", "--count", str(EVENTS), "--seed", "5", "--quiet"]):
            log = logs / f"{args[0]}.log"
            assert kappalake(yaml_file, *args, log=log, env=env).returncode == 0, tail(log)
        assert reference.wait(timeout=240) == 0, tail(logs / "reference.log")

        ingest = kappalake(yaml_file, "ingest", "--pipeline", "bronze_clickstream", "--pipeline", "silver_clickstream",
                           "--processing-time", "1 second", "--timeout", "240", log=logs / "ingest.log", env=env,
                           wait=False)
        deadline = time.monotonic() + 200
        for table in (cfg.lake.table_path("bronze.clickstream"), silver):
            while delta_rows(table) < EVENTS:
                assert ingest.poll() is None, tail(logs / "ingest.log")
                assert time.monotonic() < deadline, f"{table} has {delta_rows(table)} of {EVENTS} rows"
                time.sleep(1)
            if status is None:  # while the streaming queries run: the status, the config and the Spark UI
                status = kappalake(yaml_file, "status", log=logs / "status.log", env=env, wait=False, options=no_ui)
                shown = kappalake(yaml_file, "config", "show", log=logs / "config.log", env=env)
                assert shown.returncode == 0, tail(logs / "config.log")
        ui = spark_ui_capture(f"http://127.0.0.1:{ui_port}")
        assert status.wait(timeout=240) == 0, tail(logs / "status.log")
        assert ingest.poll() is None, tail(logs / "ingest.log")
        ingest.send_signal(signal.SIGTERM)  # a graceful stop, as an operator's Ctrl-C
        assert ingest.wait(timeout=90) == 0, tail(logs / "ingest.log")
    finally:
        for proc in (ingest, status, reference):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        local.stop()
    (tmp_path / "ui").mkdir()  # kept for a look when this fails
    for i, (name, body) in enumerate(ui.items()):
        (tmp_path / "ui" / f"{i:03d}-{name.split(' (')[0].replace(' ', '_')}.txt").write_bytes(body)

    # SASL through config alone: every event went Kafka -> bronze -> silver on the SASL listener.
    bronze = delta_frame(cfg.lake.table_path("bronze.clickstream"))
    rows = delta_frame(silver)
    assert len(bronze) == EVENTS and len(rows) == EVENTS
    outputs = {p.name: p.read_bytes() for p in sorted(logs.iterdir())}
    assert b"SASL_PLAINTEXT" in outputs["ingest.log"] and b"sasl.jaas.config = [hidden]" in outputs["ingest.log"]
    status_text = outputs["status.log"].decode(errors="replace")
    assert re.search(r"^bronze_clickstream +\w", status_text, re.M) and re.search(r"^silver\.clickstream ", status_text, re.M)
    assert "lag unavailable" not in status_text  # status reads Kafka's end offsets over SASL too

    # Pseudonyms are HMAC-SHA256 under the key, never the raw values.
    raw = {(r.partition, r.offset): json.loads(bytes(r.value)) for r in bronze.itertuples()}
    for r in rows.itertuples():
        event = raw[(r.partition, r.offset)]
        for field in ("user_id", "ip"):
            want = hmac.new(key.encode(), str(event[field]).encode(), hashlib.sha256).hexdigest()
            assert getattr(r, field) == want != event[field], field

    # Nothing anyone can read holds a secret: the outputs, the Spark UI, the lake, the checkpoints.
    leaks = {name: found for name, data in {**outputs, **ui}.items() if (found := find_leaks(data, forms))}
    scanned = {}
    for root in (cfg.lake.root, cfg.lake.checkpoint_root):
        scanned[root], found = scan_tree(Path(root), forms)
        leaks.update(found)
    assert not leaks, leaks
    # ... and they would have been seen: the scan finds the raw ids in bronze's Parquet; the
    # pages read hold the plans of the Kafka scan and of the hashing; the config is all there.
    some_user = raw[next(iter(raw))]["user_id"]
    assert scan_tree(Path(cfg.lake.table_path("bronze.clickstream")), leak_forms("user", some_user))[1]
    assert all(n > 20 for n in scanned.values()), scanned
    assert b"KafkaScan" in ui["sql (REST)"] and PAD_COLUMNS[0].encode() in ui["sql (REST)"]
    assert b"silver_clickstream" in ui["streaming (page)"] and REDACTED in ui["environment (REST)"]
    assert outputs["config.log"].count(b"'******'") >= 3  # sasl_password, privacy.secret, the broker's JAAS users


def test_explain_shows_neither_the_sasl_password_nor_the_key(spark, tmp_path, secret_values, capsys):
    """df.explain() (notebooks, debugging): a streaming Kafka DataFrame's plan prints its options
    (Spark's v1 relation inside it as given: redacted by the session), a pseudonymised one would
    print HMAC pads if they were literals."""
    from kappalake.pipelines.compose import read_source
    from kappalake.transforms.privacy import pseudonymise

    cfg = load_config("local", CONF_DIR, overrides=config_values({}, tmp_path, **sasl_client_values("127.0.0.1:9")))
    forms = {**leak_forms("SASL password", secret_values[PASSWORD_VAR]),
             **leak_forms("pseudonymisation key", secret_values[KEY_VAR], hmac_key=True)}
    kafka = read_source(spark, cfg.pipeline("bronze_clickstream"))  # no connection until it runs
    people = spark.createDataFrame([("u000001", "10.1.2.3")], "user_id string, ip string")
    hashed = pseudonymise(people, ["user_id", "ip"], cfg.privacy.secret.get_secret_value())
    for df in (kafka, hashed):
        df.explain(extended=True)
        shown = capsys.readouterr().out.encode()
        assert b"== Physical Plan ==" in shown and not find_leaks(shown, forms), find_leaks(shown, forms)
        assert (REDACTED in shown) == (df is kafka)  # the JAAS config; no key material to redact
    assert hashed.first()["user_id"] == hmac.new(secret_values[KEY_VAR].encode(), b"u000001", hashlib.sha256).hexdigest()


@pytest.mark.process
def test_pseudonymising_without_a_key_fails_at_start_up(tmp_path):
    from kappalake.pipelines.plan import validate_pipelines

    values = config_values({}, tmp_path, **{"privacy.secret": None})
    cfg = load_config("local", CONF_DIR, overrides=values)
    assert validate_pipelines(cfg, ["bronze_clickstream"]) == ["bronze_clickstream"]  # no hashing, no key needed
    with pytest.raises(ConfigError, match=r"pipelines\.silver_clickstream\.transforms\[\d\] \(pseudonymise\) needs privacy\.secret"):
        validate_pipelines(cfg, ["silver_clickstream"])

    # The job says so and stops before it starts Spark or writes anything.
    log = tmp_path / "ingest.log"
    done = kappalake(write_yaml(values, tmp_path / "nokey.yaml"), "ingest", "--pipeline", "silver_clickstream",
                     log=log, env=dict(os.environ))
    assert done.returncode == 2, tail(log)
    assert "configuration error" in log.read_text() and "needs privacy.secret" in log.read_text()
    assert not (tmp_path / "lake").exists() and not (tmp_path / "checkpoints").exists()
