"""A local Spark standalone cluster: a master and workers on 127.0.0.1, each its own JVM.

Started from the installed pyspark distribution (``bin/spark-class``; pip's pyspark has no
``sbin/start-*.sh``), managed like the embedded broker: pids, logs and the workers' work
directories under ``cluster.dir``. A job reaches it with ``--master spark://127.0.0.1:<port>``
(``./spark-submit.sh``) or ``spark.master``; its executors then run in the workers' JVMs, not in
the driver, as on EMR.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kappalake.config.sections import ClusterConf
from kappalake.errors import KappalakeError
from kappalake.ingest.broker import alive, terminate

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class ClusterError(KappalakeError):
    """The local cluster could not be started or reached; the message names the log to read."""


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    master_url: str
    web_ui: str
    master_pid: int | None
    worker_pids: list[int | None]
    workers: list[dict] = field(default_factory=list)   # as the master reports them: id, state, cores, memory
    apps: list[dict] = field(default_factory=list)      # running applications: id, name, cores


def spark_home() -> Path:
    """The installed pyspark distribution (its ``bin/spark-class`` starts the daemons)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class LocalCluster:
    """Start, stop and inspect the cluster described by a :class:`ClusterConf`."""

    def __init__(self, conf: ClusterConf):
        self.conf = conf
        self.dir = Path(conf.dir).resolve()

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.conf.port}"

    @property
    def web_ui(self) -> str:
        return f"http://{HOST}:{self.conf.webui_port}"

    def _pid_file(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """The log of ``master`` or ``worker-<i>``."""
        return self.dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of our running ``master`` or ``worker-<i>``, or None (stale pid files are ignored)."""
        try:
            pid = int(self._pid_file(name).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        cls, marker = (MASTER_CLASS, f"--port\0{self.conf.port}\0") if name == "master" else (WORKER_CLASS, self.master_url)
        return pid if cls in cmdline and marker in cmdline else None

    def state(self) -> dict | None:
        """The master's own view (its web UI's JSON), or None when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.web_ui}/json/", timeout=2) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    def status(self) -> ClusterStatus:
        st = self.state()
        workers = [{k: w.get(k) for k in ("id", "state", "cores", "coresused", "memory", "memoryused")}
                   for w in (st or {}).get("workers", []) if w.get("state") == "ALIVE"]
        apps = [{k: a.get(k) for k in ("id", "name", "cores", "state")} for a in (st or {}).get("activeapps", [])]
        pids = [self.pid(f"worker-{i}") for i in range(self.conf.workers)]
        running = st is not None and st.get("status") == "ALIVE" and len(workers) >= self.conf.workers
        return ClusterStatus(running, self.master_url, self.web_ui, self.pid("master"), pids, workers, apps)

    def start(self) -> ClusterStatus:
        """Start what is not running (the master, then each missing worker) and wait until the
        master counts every worker alive. Idempotent: restarts a worker that was killed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ["master"] + [f"worker-{i}" for i in range(self.conf.workers)]:
            if self.pid(name) is None:  # never started, stopped or killed: its pid file is stale
                self._pid_file(name).unlink(missing_ok=True)
        if self.pid("master") is None:
            if self.state() is not None:
                raise ClusterError(f"port {self.conf.webui_port} on {HOST} already answers as a Spark master that "
                                   f"kappalake did not start; stop it or set cluster.port and cluster.webui_port")
            self._spawn("master", [MASTER_CLASS, "--host", HOST, "--port", str(self.conf.port),
                                   "--webui-port", str(self.conf.webui_port)])
        self._wait(lambda st: st.get("status") == "ALIVE", "the master", "master")
        # A killed worker may still count as alive to the master for a moment: wait for the new
        # ones to register themselves, not for a number of workers.
        before, spawned = _alive_ids(self.state()), 0
        for i in range(self.conf.workers):
            name = f"worker-{i}"
            if self.pid(name) is None:
                spawned += 1
                work = self.dir / name
                work.mkdir(exist_ok=True)
                self._spawn(name, [WORKER_CLASS, "--host", HOST, "--cores", str(self.conf.worker_cores),
                                   "--memory", self.conf.worker_memory, "--work-dir", str(work),
                                   "--webui-port", "0", self.master_url])
        self._wait(lambda st: len(_alive_ids(st) - before) >= spawned and len(_alive_ids(st)) >= self.conf.workers,
                   f"{self.conf.workers} workers", "worker-0")
        return self.status()

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the workers (their executors go with them), then the master. Returns whether
        anything was running."""
        names = [f"worker-{i}" for i in range(self.conf.workers)] + ["master"]
        found = False
        for name in names:
            pid = self.pid(name)
            if pid is not None:
                found = True
                terminate(pid, timeout)
            self._pid_file(name).unlink(missing_ok=True)
        return found

    def kill_worker(self, index: int) -> int:
        """SIGKILL worker ``index`` (a lost machine); returns its pid. Its executor notices the
        worker gone and exits; the master reschedules on the others."""
        pid = self.pid(f"worker-{index}")
        if pid is None:
            raise ClusterError(f"worker {index} is not running")
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
        return pid

    def _spawn(self, name: str, args: list[str]) -> None:
        home = spark_home()
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_NO_DAEMONIZE": "1",
               "SPARK_DAEMON_MEMORY": self.conf.daemon_memory, "SPARK_LOG_DIR": str(self.dir)}
        with open(self.log_file(name), "ab") as log:
            proc = subprocess.Popen([str(home / "bin/spark-class"), *args], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir, env=env)
        self._pid_file(name).write_text(str(proc.pid))

    def _exited(self, name: str) -> bool:
        """Whether ``name`` was spawned and its process is gone (just spawned, its command line
        may not show yet: the pid alone decides)."""
        try:
            return not alive(int(self._pid_file(name).read_text().strip()))
        except (OSError, ValueError):
            return False

    def _wait(self, ready, what: str, log: str) -> None:
        deadline = time.monotonic() + self.conf.start_timeout_s
        while time.monotonic() < deadline:
            st = self.state()
            if st is not None and ready(st):
                return
            for name in ["master"] + [f"worker-{i}" for i in range(self.conf.workers)]:
                if self._exited(name):
                    raise ClusterError(f"the Spark {name} exited during start-up; see {self.log_file(name)}")
            time.sleep(0.5)
        raise ClusterError(f"{what} of the local Spark cluster did not come up within {self.conf.start_timeout_s:.0f} s; "
                           f"see {self.log_file(log)} (and the others in {self.dir})")


def _alive_ids(state: dict | None) -> set[str]:
    """The ids of the workers the master counts alive."""
    return {w.get("id") for w in (state or {}).get("workers", []) if w.get("state") == "ALIVE"}
