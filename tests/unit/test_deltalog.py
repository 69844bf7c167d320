"""`verify`'s Delta check reads the log once: every version readable, every referenced file present."""

from pathlib import Path

from delta.tables import DeltaTable

from kappalake.ops.consistency import check_delta


def _append(spark, path: Path, start: int, mode: str = "append") -> None:
    spark.range(start, start + 10).repartition(1).write.format("delta").mode(mode).save(str(path))


def test_files_missing_commits_broken_and_files_for_vacuum_are_reported(spark, tmp_path):
    path = tmp_path / "t"
    for i in range(3):
        _append(spark, path, i * 10)
    _append(spark, path, 100, mode="overwrite")  # version 3 removes the 3 files; versions 0-2 still read them
    c = check_delta(spark, str(path), "t")
    assert c.ok and c.figures["versions"] == 4 and c.figures["unreferenced"] == 0, c
    (path / "part-00000-stray.snappy.parquet").write_bytes(b"")  # a file no version wrote
    c = check_delta(spark, str(path), "t")
    assert c.ok and c.figures["unreferenced"] == 1 and c.figures["dangling"] == 0, c

    Path(DeltaTable.forPath(spark, str(path)).toDF().inputFiles()[0].removeprefix("file:")).unlink()
    c = check_delta(spark, str(path), "t")
    assert not c.ok and c.figures["dangling"] == 1 and "1 referenced files missing" in c.detail, c

    log = path / "_delta_log"
    (log / "00000000000000000001.json").write_text('{"commitInfo": {}}\nnot json\n')  # edited by hand...
    (log / ".00000000000000000001.json.crc").unlink()  # ...its checksum with it
    (log / "00000000000000000002.json").unlink()
    (log / "00000000000000000003.json").write_text('{"commitInfo": {}}\n')  # its checksum no longer matches
    c = check_delta(spark, str(path), "t")
    assert not c.ok and c.figures["unreadable"] == 3, c
    assert "version 1: unparsable line 'not json'" in c.detail and "version 2: its commit file is missing" in c.detail
    assert "version 3: its commit file cannot be read" in c.detail, c


def test_a_log_cleaned_up_to_a_checkpoint_starts_there(spark, tmp_path):
    path = tmp_path / "t"
    key = "spark.databricks.delta.properties.defaults.checkpointInterval"
    spark.conf.set(key, "2")
    try:
        for i in range(3):
            _append(spark, path, i * 10)
    finally:
        spark.conf.unset(key)
    log = path / "_delta_log"
    assert (log / "00000000000000000002.checkpoint.parquet").exists()
    for v in range(2):
        (log / f"{v:020d}.json").unlink()  # what log retention does, long after
    c = check_delta(spark, str(path), "t")
    assert c.ok and c.figures["versions"] == 1 and c.figures["unreferenced"] == 0 and c.figures["dangling"] == 0, c
