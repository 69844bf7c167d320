"""Lifecycle of the embedded local Apache Kafka broker (KRaft, loopback only).

The broker is the genuine Apache Kafka server from Maven Central: ``tools/kafka/pom.xml``
resolves ``org.apache.kafka:kafka_2.13`` and its runtime jars into a project-local cache
(its own Maven repository, so Spark's Ivy never trips over half-populated ``~/.m2`` entries),
and ``kafka.Kafka`` runs on that classpath as a combined broker+controller. Data, pid and
log live under ``broker.data_dir`` so topics and offsets survive restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kappalake.config import BrokerConf
from kappalake.errors import BrokerError

HOST = "127.0.0.1"
POM_ENV = "KAPPALAKE_KAFKA_POM"


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    address: str
    data_dir: str
    kafka_version: str
    fetched: bool


def find_pom() -> Path:
    """The tracked broker recipe: ``$KAPPALAKE_KAFKA_POM`` or ``tools/kafka/pom.xml`` of the checkout."""
    candidates = [os.environ.get(POM_ENV), "tools/kafka/pom.xml", Path(__file__).resolve().parents[2] / "tools/kafka/pom.xml"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c).resolve()
    raise BrokerError(f"cannot find tools/kafka/pom.xml; run from the kappalake checkout or set {POM_ENV}")


class LocalBroker:
    """Fetch, start, stop and inspect one local broker described by a :class:`BrokerConf`."""

    def __init__(self, conf: BrokerConf):
        self.conf = conf
        self.data_dir = Path(conf.data_dir).resolve()
        self.cache_dir = Path(conf.cache_dir).resolve()
        self.libs_dir = self.cache_dir / f"kafka-{conf.kafka_version}" / "libs"
        self.pid_file = self.data_dir / "broker.pid"
        self.log_file = self.data_dir / "broker.log"
        self.log_dirs = self.data_dir / "kraft-logs"
        self.properties_file = self.data_dir / "server.properties"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.conf.port}"

    # -- fetch ------------------------------------------------------------------------
    def is_fetched(self) -> bool:
        return (self.libs_dir / ".complete").is_file()

    def fetch(self, quiet: bool = True) -> Path:
        """Resolve the broker jars from Maven Central once; a no-op when already cached."""
        if self.is_fetched():
            return self.libs_dir
        if not shutil.which("mvn"):
            raise BrokerError("Maven (mvn) is needed to fetch the Kafka broker: apt-get install -y maven")
        tmp = self.libs_dir.with_name(f"libs.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            "mvn", "-B", *(["-q"] if quiet else []), "-f", str(find_pom()),
            f"-Dkafka.version={self.conf.kafka_version}",
            f"-Dmaven.repo.local={self.cache_dir / 'm2'}",
            "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"fetching Kafka {self.conf.kafka_version} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        tmp.rename(self.libs_dir)
        (self.libs_dir / ".complete").write_text(self.conf.kafka_version)
        return self.libs_dir

    # -- status -----------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of our running broker, or None (stale pid files are ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline else None

    def answers(self) -> bool:
        """Whether something accepts connections on the broker's port (ours or not)."""
        return _port_open(self.conf.port)

    def status(self) -> BrokerStatus:
        pid = self.pid()
        return BrokerStatus(pid is not None and _port_open(self.conf.port), pid, self.address,
                            str(self.data_dir), self.conf.kafka_version, self.is_fetched())

    # -- start / stop -----------------------------------------------------------------
    def start(self) -> BrokerStatus:
        """Start the broker (fetching and formatting storage first if needed); wait until it answers."""
        if self.pid() is not None:
            self._wait_ready(self.pid())
            return self.status()
        if _port_open(self.conf.port):
            raise BrokerError(f"port {self.conf.port} on {HOST} is already in use by another process; set broker.port")
        self.fetch()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        if not (self.log_dirs / "meta.properties").is_file():
            self._format_storage()
        log = open(self.log_file, "ab")
        cmd = [_java(), f"-Xmx{self.conf.heap}", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self._write_log_config()}",
               "-cp", f"{self.libs_dir}/*", "kafka.Kafka", str(self.properties_file)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.data_dir)
        log.close()
        self.pid_file.write_text(str(proc.pid))
        try:
            self._wait_ready(proc.pid, proc)
        except BrokerError:
            self.stop(timeout=10)  # never leave a half-started broker behind
            raise
        return self.status()

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown), wait, then SIGKILL. Returns whether one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True

    # -- internals --------------------------------------------------------------------
    def _write_properties(self) -> None:
        c = self.conf
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{c.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{c.port},CONTROLLER://{HOST}:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "3",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "message.max.bytes": "10485760",
            **c.properties,
        }
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _write_log_config(self) -> Path:
        path = self.data_dir / "log4j2.properties"
        path.write_text(
            "status = warn\n"
            "appender.out.type = Console\nappender.out.name = out\n"
            "appender.out.layout.type = PatternLayout\nappender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = out\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.controller.name = org.apache.kafka\nlogger.controller.level = WARN\n"
            "logger.raft.name = kafka.raft\nlogger.raft.level = WARN\n"
        )
        return path

    def _format_storage(self) -> None:
        cluster_id = _cluster_id()
        cmd = [_java(), "-cp", f"{self.libs_dir}/*", "kafka.tools.StorageTool", "format",
               "-t", cluster_id, "-c", str(self.properties_file), "--ignore-formatted"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self.log_dirs} failed:\n{proc.stdout}{proc.stderr}")

    def _wait_ready(self, pid: int, proc: subprocess.Popen | None = None) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self.conf.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not alive(pid) or (proc is not None and proc.poll() is not None):
                raise BrokerError(f"the Kafka broker exited during start-up; see {self.log_file}:\n{_tail(self.log_file)}")
            if _port_open(self.conf.port):
                try:
                    admin = KafkaAdminClient(bootstrap_servers=[self.address], request_timeout_ms=5000,
                                             client_id="kappalake-broker-check")
                    try:
                        admin.describe_cluster()
                        return
                    finally:
                        admin.close()
                except (KafkaError, OSError) as e:
                    last = e
            time.sleep(0.5)
        raise BrokerError(f"the Kafka broker did not answer on {self.address} within {self.conf.start_timeout_s}s "
                          f"(last error: {last}); see {self.log_file}:\n{_tail(self.log_file)}")


def _cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding. One in 64
    # starts with "-", which kafka-storage's argument parser takes for an option (so Kafka's
    # own Uuid.randomUuid() draws again in that case; so do we).
    import base64

    while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cid


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin/java") if home and (Path(home) / "bin/java").exists() else shutil.which("java")
    if not java:
        raise BrokerError("Java 17+ is needed to run Kafka: apt-get install -y openjdk-17-jre-headless")
    return java


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` seconds, then SIGKILL; return once it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.1)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (an exited, unreaped one is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited but not been reaped: treat as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
