"""The notebooks in notebooks/ run top to bottom on a demo lake, in a real Jupyter kernel.

The notebooks are executed with nbclient, one after another in one ``python3`` kernel running
this interpreter (a kernelspec written to a temporary ``JUPYTER_PATH``), configured through the environment the
kernel inherits: ``KAPPALAKE_CONFIG`` points at the ``demo_lake`` fixture's YAML (plus a
second file keeping Spark's warehouse and UI out of the way), and the monitor refreshes once.
The executed copies are written under ``tmp_path`` only: the repository keeps them stripped; the
funnel plot of the last notebook is kept as ``docs/img/notebook-funnel.png`` for the docs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.process  # a Jupyter kernel with its own Spark JVM

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = ["01_exploring_the_lake", "02_data_quality", "03_streaming_monitor", "04_clickstream_and_fleet_analytics"]


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ``python3`` kernelspec runs this interpreter (the project's .venv)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (kappalake tests)",
        "language": "python",
    }))
    return root


@pytest.fixture(scope="module")
def kernel(demo_lake, jupyter_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One ``python3`` kernel for the four notebooks: they share its SparkSession, as notebooks
    opened one after another in one Jupyter kernel would (one JVM start instead of four)."""
    from jupyter_client.manager import KernelManager

    _, lake_yaml = demo_lake
    tmp = tmp_path_factory.mktemp("notebooks")
    session_yaml = tmp / "notebook-session.yaml"
    session_yaml.write_text(json.dumps({"spark": {"conf": {  # JSON is YAML
        "spark.sql.warehouse.dir": str(tmp / "warehouse"), "spark.ui.enabled": "false"}}}))
    with pytest.MonkeyPatch.context() as env:  # the kernel inherits this environment
        env.setenv("JUPYTER_PATH", str(jupyter_path))
        env.setenv("KAPPALAKE_CONFIG", os.pathsep.join([str(lake_yaml), str(session_yaml)]))
        env.setenv("KAPPALAKE_MONITOR_REFRESHES", "1")
        env.setenv("KAPPALAKE_MONITOR_INTERVAL_S", "0")
        env.setenv("PYSPARK_PYTHON", sys.executable)
        env.delenv("KAPPALAKE_PROFILE", raising=False)
        km = KernelManager(kernel_name="python3")
        km.start_kernel(cwd=str(NOTEBOOKS))
    yield km
    ports = km.ports
    km.shutdown_kernel(now=True)
    # A kernel client left open keeps dialling the dead kernel's ports (ZeroMQ reconnects every
    # 100 ms); once Spark's one-shot result server took one of them, and a collect failed.
    assert not dialled(ports, 1.0), "something still connects to the stopped kernel's ports"


def dialled(ports: list[int], seconds: float) -> list[int]:
    """The ports (of those that can be bound again) someone connects to within ``seconds``."""
    listeners = []
    for port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the kernel's side may be in TIME_WAIT
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.listen()
        s.setblocking(False)
        listeners.append((port, s))
    hit = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(hit) < len(listeners):
        for port, s in listeners:
            try:
                s.accept()[0].close()
                hit.add(port)
            except BlockingIOError:
                pass
        time.sleep(0.05)
    for _, s in listeners:
        s.close()
    return sorted(hit)


def execute(name: str, kernel, tmp_path: Path):
    """Run the notebook in the shared kernel; fail with the failing cell's error. Returns it executed."""
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, km=kernel, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{name}.ipynb: a cell raised\n{exc}", pytrace=False)
    finally:
        if client.kc is not None:  # nbclient leaves the client of a kernel it does not own open
            client.kc.stop_channels()
        nbformat.write(nb, tmp_path / f"{name}.executed.ipynb")
    return nb


def tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"one cell tagged {tag!r} expected"
    return cells[0]


def text(cell) -> str:
    """A cell's printed and displayed text (stdout and text/plain results)."""
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream" and out.name == "stdout":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
    return "".join(parts)


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)


def html_rows(cell) -> int:
    """Body rows of the HTML table a cell displayed (a pandas DataFrame)."""
    html = next(out.data["text/html"] for out in cell.outputs if "text/html" in out.get("data", {}))
    return html.split("<tbody>", 1)[1].split("</tbody>", 1)[0].count("<tr")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_demo_lake(name, kernel, tmp_path):
    nb = execute(name, kernel, tmp_path)
    errors = [out for c in nb.cells if c.cell_type == "code" for out in c.outputs if out.output_type == "error"]
    assert not errors

    if name.startswith("01"):
        rows = {}
        for line in text(tagged(nb, "tables")).splitlines()[1:]:
            table, exists, count, *_ = line.split()
            rows[table] = int(count) if exists == "True" else None
        for table in ["bronze.clickstream", "bronze.telemetry", "silver.clickstream", "silver.telemetry",
                      "quarantine.clickstream", "gold.page_minute", "gold.sessions", "gold.zone_occupancy",
                      "ops.quality_metrics", "dim.products"]:
            assert rows.get(table), f"{table}: {rows.get(table)} rows"
        travel = re.search(r"silver\.clickstream: ([\d,]+) rows at version (\d+), ([\d,]+) rows now",
                           text(tagged(nb, "time_travel")))
        assert travel, text(tagged(nb, "time_travel"))
        then, version, now = int(travel[1].replace(",", "")), int(travel[2]), int(travel[3].replace(",", ""))
        assert version >= 1 and 0 < then <= now == rows["silver.clickstream"]
    elif name.startswith("02"):
        assert images(nb) >= 3  # rates per batch, top failing rules, quarantine by stage
        quality = text(tagged(nb, "quality_by_table"))
        assert "silver.clickstream" in quality and "silver.telemetry" in quality
    elif name.startswith("03"):
        assert images(nb) >= 1
        monitor = text(tagged(nb, "monitor"))
        lag = re.search(r"refresh 1/1 at .*: (\d+) commits of (\d+) tables; lag (\d+) records over (\d+)", monitor)
        assert lag, monitor  # the fixture's broker is up: lag is known
        assert int(lag[1]) > 0 and int(lag[2]) > 0 and int(lag[4]) > 0
    else:
        assert images(nb) >= 6  # products, funnel, viewers, zones, temperatures, alerts
        assert html_rows(tagged(nb, "spark_sql")) == 5
        # The docs show this run's funnel plot (docs/notebooks-dashboard.md).
        png = next(out.data["image/png"] for out in tagged(nb, "funnel").outputs if "image/png" in out.get("data", {}))
        (REPO / "docs" / "img" / "notebook-funnel.png").write_bytes(base64.b64decode(png))
