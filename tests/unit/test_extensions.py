"""Event types of a user's own: what a wrong ``libraries`` or ``contracts_dir`` entry says
(tests/integration/test_new_topic.py runs a whole new topic from such a conf directory)."""

from __future__ import annotations

import json
import shutil

import pytest

from kappalake.config import ConfigError, load_config
from kappalake.config import extensions
from kappalake.ingest import contracts
from tests.conftest import CONF_DIR


@pytest.fixture
def conf(tmp_path):
    """A copy of the conf directory; the extensions of the default one are in use again after the test."""
    shutil.copytree(CONF_DIR, tmp_path / "conf")
    yield tmp_path / "conf"
    load_config("local", CONF_DIR)


def load(conf, **overrides):
    return load_config("local", conf, overrides=overrides)


def test_a_library_that_does_not_exist_is_named(conf):
    with pytest.raises(ConfigError, match=r"^libraries: 'transforms/\*\.py' matches no Python file under .*conf"):
        load(conf, libraries=["transforms/*.py"])


def test_a_library_that_fails_to_import_names_its_file_line_and_error(conf):
    (conf / "broken.py").write_text("import os\n\nx = undefined_name\n")
    with pytest.raises(ConfigError) as e:
        load(conf, libraries=["broken.py"])
    assert str(e.value) == (f"libraries: {(conf / 'broken.py').resolve()} (line 3) failed to import: "
                            "NameError: name 'undefined_name' is not defined")


def test_a_library_cannot_take_a_transform_or_topic_kappalake_has(conf):
    (conf / "clash.py").write_text("from kappalake.transforms.registry import transform\n\n"
                                   "@transform\ndef dedup(df):\n    return df\n")
    with pytest.raises(ConfigError, match="transform 'dedup' is already registered .*kappalake.transforms.dedup"):
        load(conf, libraries=["clash.py"])
    (conf / "sim.py").write_text("from kappalake.ingest.simulators import simulator\n\n"
                                 "@simulator('telemetry', implausible=('x', (1, 2)))\ndef sim(*a):\n    return iter(())\n")
    with pytest.raises(ConfigError, match="simulator for topic 'telemetry' is already registered"):
        load(conf, libraries=["sim.py"])


def test_a_library_registers_a_transform_once_however_often_its_config_loads(conf):
    from kappalake.transforms.registry import TRANSFORMS

    (conf / "mine.py").write_text("from kappalake.transforms.registry import transform\n\n"
                                  "@transform('tx_test_identity')\ndef identity(df):\n    return df\n")
    try:
        load(conf, libraries=["mine.py"])
        first = TRANSFORMS["tx_test_identity"]
        load(conf, libraries=["mine.py"])
        assert TRANSFORMS["tx_test_identity"] is first
    finally:
        TRANSFORMS.pop("tx_test_identity", None)  # the catalog of transforms the docs list stays kappalake's


def test_a_named_contracts_dir_must_exist(conf):
    with pytest.raises(ConfigError, match=r"^contracts_dir: .*/nowhere is not a directory"):
        load(conf, contracts_dir="nowhere")
    load(conf)  # the default, contracts/, may be absent
    assert extensions.contract_dirs() == ()


@pytest.mark.parametrize("name, body, message", [
    ("orders.json", {}, r"orders\.json is not named <topic>\.v<N>\.json"),
    ("orders.v1.json", "{not json", r"orders\.v1\.json is not a valid JSON Schema: Expecting property name"),
    ("orders.v1.json", {"type": "object", "properties": {"a": {"type": "strin"}}}, "is not a valid JSON Schema"),
    ("orders.v1.json", {"type": "object", "properties": {"a": {"type": "string"}}}, r'needs "x-kafka-key".*\(one of a\)'),
    ("clickstream.v1.json", {"type": "object", "x-kafka-key": "a", "properties": {"a": {}}},
     "defines clickstream v1, which kappalake's own contracts define"),
])
def test_a_bad_contract_file_is_named_with_what_is_wrong(tmp_path, name, body, message):
    (tmp_path / name).write_text(body if isinstance(body, str) else json.dumps(body))
    with pytest.raises(ConfigError, match=message):
        contracts._read_catalog((tmp_path,))


def test_a_contract_of_the_users_is_one_like_any_other(tmp_path):
    (tmp_path / "orders.v1.json").write_text(json.dumps({
        "type": "object", "x-kafka-key": "user_id", "required": ["user_id"],
        "properties": {"user_id": {"type": "string"}, "amount": {"type": ["number", "null"]}}}))
    catalog = contracts._read_catalog((tmp_path,))
    assert sorted(catalog) == ["clickstream", "orders", "signups", "telemetry"]
    assert catalog["orders"][1]["x-kafka-key"] == "user_id"
