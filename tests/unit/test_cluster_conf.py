"""The local cluster's bookkeeping without starting it: status, stale pid files, the CLI's answer."""

from __future__ import annotations

import os
from pathlib import Path

from kappalake.cli import main
from kappalake.config import load_config
from kappalake.ops.cluster import LocalCluster
from tests.conftest import CONF_DIR, free_port


def _cluster(tmp_path: Path) -> tuple[LocalCluster, list[str]]:
    sets = {"cluster.dir": str(tmp_path / "cluster"), "cluster.port": free_port(), "cluster.webui_port": free_port()}
    cfg = load_config("local", CONF_DIR, overrides=sets)
    return LocalCluster(cfg.cluster), [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def test_a_cluster_never_started_is_not_running(tmp_path, capsys):
    cluster, args = _cluster(tmp_path)
    st = cluster.status()
    assert not st.running and st.master_pid is None and st.worker_pids == [None, None] and st.workers == []
    assert st.master_url == f"spark://127.0.0.1:{cluster.conf.port}"
    assert main([*args, "cluster", "status"]) == 3  # like `broker status`: 3 when not running
    assert '"running": false' in capsys.readouterr().out
    assert main([*args, "cluster", "stop"]) == 0 and "cluster was not running" in capsys.readouterr().out


def test_a_pid_file_of_another_process_is_not_the_cluster(tmp_path):
    cluster, _ = _cluster(tmp_path)
    cluster.dir.mkdir(parents=True)
    for name in ("master", "worker-0"):
        (cluster.dir / f"{name}.pid").write_text(str(os.getpid()))  # this test's Python, not a Spark daemon
        assert cluster.pid(name) is None
    (cluster.dir / "worker-1.pid").write_text("not a pid")
    assert cluster.pid("worker-1") is None and not cluster.stop()
