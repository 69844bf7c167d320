"""Idempotent appends: a replayed micro-batch (same app id and version) is written once."""

import shutil

from delta.tables import DeltaTable

from kappalake.lake.tables import ensure_table, read_table, table_exists
from kappalake.lake.writers import Append, Txn


def test_replayed_batch_is_not_duplicated(spark, tmp_path):
    path = str(tmp_path / "t")
    df = spark.range(100).withColumnRenamed("id", "n")
    ensure_table(spark, path, df.schema, [], {"delta.autoOptimize.autoCompact": "true"})
    ensure_table(spark, path, df.schema, [], {})  # second call is a no-op
    Append(path).write(df, Txn("q1", 0))
    Append(path).write(df, Txn("q1", 0))  # replay after a crash
    Append(path).write(df, Txn("q1", 1))
    Append(path).write(df, Txn("q2", 0))  # a new checkpoint is a new app id
    assert spark.read.format("delta").load(path).count() == 300
    table = DeltaTable.forPath(spark, path)
    props = spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    assert {r.key: r.value for r in props}["delta.autoOptimize.autoCompact"] == "true"
    writes = table.history().filter("operation = 'WRITE'").count()
    assert writes == 3  # three real appends; the replay committed nothing (auto compaction may add OPTIMIZEs)


def test_a_table_whose_creation_was_killed_is_created_on_restart(spark, tmp_path):
    # Delta makes _delta_log before it writes version 0; chaos's kills caught a job in between,
    # and every restart then failed with DELTA_TABLE_NOT_FOUND.
    path = tmp_path / "t"
    (path / "_delta_log").mkdir(parents=True)
    (path / "_delta_log" / ".00000000000000000000.json.1f2e.tmp").write_text("")
    df = spark.range(3).withColumnRenamed("id", "n")
    ensure_table(spark, str(path), df.schema, [], {})
    Append(str(path)).write(df, Txn("q1", 0))
    assert spark.read.format("delta").load(str(path)).count() == 3
    ensure_table(spark, str(path), df.schema, [], {})  # a table with versions is left as it is
    assert spark.read.format("delta").load(str(path)).count() == 3


def test_a_table_another_process_creates_is_seen_once_it_has_a_version(spark, tmp_path):
    made = tmp_path / "made"
    spark.range(3).write.format("delta").save(str(made))
    path = tmp_path / "t"
    (path / "_delta_log").mkdir(parents=True)  # another process is creating the table: no version yet
    assert not table_exists(spark, str(path))
    shutil.rmtree(path)
    shutil.copytree(made, path)  # ... and now it has committed version 0
    assert table_exists(spark, str(path)) and read_table(spark, str(path)).count() == 3


def test_a_latest_state_merge_keeps_the_newest_row_per_key_whatever_the_order(spark, tmp_path):
    from datetime import datetime

    from kappalake.lake.sinks import Merge

    path = str(tmp_path / "latest")
    schema = "device_id string, event_time timestamp, speed double"
    t = lambda s: datetime(2026, 12, 7, 12, 0, s)  # noqa: E731
    ensure_table(spark, path, spark.createDataFrame([], schema).schema, [], {})
    merge = Merge(path, ("device_id",), latest_by="event_time")
    # Within a batch: the newest per key; a tie is broken by the row's content, the same on a replay.
    first = spark.createDataFrame([("a", t(1), 10.0), ("a", t(3), 30.0), ("b", t(2), 5.0), ("b", t(2), 6.0),
                                   ("c", None, 1.0)], schema)
    merge.write(first)
    once = {r.device_id: (r.event_time, r.speed) for r in read_table(spark, path).collect()}
    merge.write(first)  # replayed
    assert {r.device_id: (r.event_time, r.speed) for r in read_table(spark, path).collect()} == once
    assert once["a"] == (t(3), 30.0) and once["b"][0] == t(2) and once["c"] == (None, 1.0)
    # Across batches: an older row never replaces a newer one; a newer one (or any over a null time) does.
    merge.write(spark.createDataFrame([("a", t(2), 20.0), ("b", t(4), 40.0), ("c", t(1), 2.0)], schema))
    rows = {r.device_id: (r.event_time, r.speed) for r in read_table(spark, path).collect()}
    assert rows == {"a": (t(3), 30.0), "b": (t(4), 40.0), "c": (t(1), 2.0)}
