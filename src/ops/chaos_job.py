"""What a chaos scenario drives: the streaming job as a child process (:class:`Job`), the
producers feeding it (:class:`Feed`), the configuration both get (:class:`ConfigSource`), and
the files watched to kill the job at a chosen point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kappalake.config import Config, load_config
from kappalake.ingest import simulators


@dataclass
class ConfigSource:
    """How the config was given (profile, files, --set), so the job process gets the same one."""

    profile: str = "local"
    conf_dir: str | None = None
    files: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)

    def load(self, extra: dict[str, Any]) -> Config:
        return load_config(self.profile, self.conf_dir, self.files, [*self.overrides, *_sets(extra)])

    def argv(self, extra: dict[str, Any]) -> list[str]:
        out = ["--profile", self.profile] + (["--conf-dir", self.conf_dir] if self.conf_dir else [])
        for f in self.files:
            out += ["--config", f]
        for s in [*self.overrides, *_sets(extra)]:
            out += ["--set", s]
        return out


def _sets(extra: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in extra.items()]


class Job:
    """``kappalake ingest`` as a child process in its own session (so SIGKILL takes its JVM too)."""

    def __init__(self, source: ConfigSource, extra: dict[str, Any], log: Path, pipelines: list[str]):
        self.source, self.extra, self.log, self.pipelines = source, extra, log, pipelines
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "kappalake", *self.source.argv(self.extra), "ingest",
               *[a for n in self.pipelines for a in ("--pipeline", n)], *args]
        with open(self.log, "ab") as out:
            out.write(f"\n=== {' '.join(args) or 'start'} at {time.strftime('%H:%M:%S')} ===\n".encode())
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.started = time.monotonic()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.running:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=60)

    def stop(self, timeout: float = 120.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL after ``timeout``."""
        if not self.running:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def error(self) -> str:
        """The job's one-line failure message (``kappalake: ...``), if it printed one."""
        msgs = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.startswith("kappalake: ")]
        return msgs[-1] if msgs else ""


class Feed:
    """Both topics fed at ``rate`` events/s each, with faults, in chunks until stopped or paused."""

    def __init__(self, cfg: Config, topics: list[str], rate: float, faults: float, seed: int):
        from kappalake.ingest.faults import FaultRates

        self.cfg, self.rate, self.faults, self.seed = cfg, rate, FaultRates.uniform(faults), seed
        self.acked = {t: 0 for t in topics}
        self.errors = 0
        self._stop, self._go = threading.Event(), threading.Event()
        self._go.set()
        self._threads = [threading.Thread(target=self._run, args=(t, i), daemon=True)
                         for i, t in enumerate(self.acked)]

    def _run(self, topic: str, i: int) -> None:
        from kappalake.ingest.producer import ProduceSpec, produce

        chunk = 0
        world = simulators.get(topic).small_world
        while not self._stop.is_set():
            self._go.wait()
            if self._stop.is_set():
                break
            chunk += 1
            stats = produce(self.cfg, ProduceSpec(topic, count=max(1, int(self.rate * 2)), rate=self.rate,
                                                  seed=self.seed * 1000 + i * 100_000 + chunk, faults=self.faults,
                                                  **world))
            self.acked[topic] += stats.acked
            self.errors += stats.errors

    def start(self) -> "Feed":
        for t in self._threads:
            t.start()
        return self

    def pause(self) -> None:
        self._go.clear()
        time.sleep(2.5)  # the chunk under way (2 s of events) finishes

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._go.set()
        for t in self._threads:
            t.join(timeout=120)
        return dict(self.acked)


def _entries(path: Path) -> set[str]:
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def batches(path: Path) -> int:
    """Highest batch id in a checkpoint's offsets/ or commits/ directory (-1: none)."""
    return max((int(n) for n in _entries(path) if n.isdigit()), default=-1)


def watch(path: Path, job: Job, timeout: float) -> str | None:
    """Block until a new entry appears in ``path`` (a temp file or a finished one); its name."""
    before = _entries(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.running:
        new = _entries(path) - before
        if new:
            return sorted(new)[0]
        time.sleep(0.002)
    return None
