"""What a stream has settled, read from its checkpoint: a planned first batch owns its input."""

from pathlib import Path

from kappalake.config import load_config
from kappalake.pipelines.checkpoints import delta_source_version

CONF = Path(__file__).resolve().parents[2] / "conf"
OFFSET = '{"sourceVersion":1,"reservoirId":"r","reservoirVersion":%d,"index":-1,"isStartingVersion":false}'


def _batch(root: Path, kind: str, batch: int, version: int) -> None:
    (root / kind).mkdir(parents=True, exist_ok=True)
    body = ["v1", '{"batchWatermarkMs":0,"batchTimestampMs":0,"conf":{}}', OFFSET % version] if kind == "offsets" else ["v1", "{}"]
    (root / kind / str(batch)).write_text("\n".join(body))


def test_versions_settled_by_the_silver_stream(spark, tmp_path):
    cfg = load_config("local", CONF, overrides={"lake.checkpoint_root": str(tmp_path)})
    root = tmp_path / "silver_clickstream"
    assert delta_source_version(spark, cfg.pipeline("silver_clickstream")) is None  # never ran: a batch may take it all
    _batch(root, "offsets", 0, 3)
    # Planned, not committed: the batch under way will write what it read, so nothing is settled
    # (a reprocess then would write the same rows as that batch).
    assert delta_source_version(spark, cfg.pipeline("silver_clickstream")) == -1
    _batch(root, "commits", 0, 3)
    assert delta_source_version(spark, cfg.pipeline("silver_clickstream")) == 2
    _batch(root, "offsets", 1, 5)
    assert delta_source_version(spark, cfg.pipeline("silver_clickstream")) == 2
