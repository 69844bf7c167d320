"""The configuration: every key of the models with its meaning, the profiles, the shipped pipelines
and the tables they write."""

from __future__ import annotations

import inspect
import io
import re
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

from generators.common import REPO, CONF, ENUMERATION, GenerationError, cell, anchor, code, table, flow


# What a key means when neither the model (a Field description, or a comment next to the field in
# src/config/) nor conf/base.yaml (a comment on the key) says it; and facts worth adding to
# what they say. A key listed here that the models no longer have stops the build.
CONFIG_NOTES: dict[str, str] = {
    "app_name": "Spark application name of the jobs (the dashboard adds `-dashboard`).",
    "broker.mode": "`embedded`: kappalake runs a genuine Apache Kafka (KRaft) on 127.0.0.1 itself; `external`: "
                   "use `kafka.bootstrap_servers` as given (MSK, Confluent, any cluster).",
    "privacy.secret": "The key of the HMAC-SHA256 pseudonyms of `user_id`, `ip` and `badge_id`; only as "
                      "`${env:VAR}` (masked in `config show`). Hashing with no secret stops at start-up naming "
                      "the key.",
    "broker.kafka_version": "The Apache Kafka release the embedded broker runs.",
    "broker.port": "Port of the embedded broker's client listener on 127.0.0.1.",
    "broker.controller_port": "Port of the embedded broker's KRaft controller listener (must differ from `broker.port`).",
    "broker.heap": "JVM heap of the embedded broker (`-Xmx`).",
    "broker.start_timeout_s": "How long `broker start` waits for the broker to answer before it fails with its log.",
    "kafka.bootstrap_servers": "With `broker.mode: external` it is required (`host:port[,host:port]`).",
    "kafka.sasl_username": "SASL user name (PLAIN, SCRAM).",
    "kafka.sasl_password": "The SASL password: a literal is refused; masked by `config show`.",
    "kafka.security_protocol": "Shared by Spark's Kafka source and sink and the kafka-python clients (admin, "
                               "producers, `alerts tail`); the embedded broker speaks PLAINTEXT only.",
    "kafka.outage_wait_s": "kafka-python clients (topics, produce, alerts tail) wait as long for their first "
                           "connection, 30 s at most.",
    "kafka.sasl_mechanism": "AWS_MSK_IAM also needs `security_protocol: SASL_SSL` and the login module in "
                            "`spark.extra_packages` (checked at start-up).",
    "topics.<name>.name": "The Kafka topic's name; pipelines and commands use the logical name (the key under "
                          "`topics`).",
    "topics.<name>.partitions": "Partitions when kappalake creates the topic.",
    "topics.<name>.replication_factor": "Replication factor when kappalake creates the topic.",
    "topics.<name>.config": "Topic configs when kappalake creates it, e.g. `retention.ms`, `max.message.bytes`.",
    "spark.master": "Spark master, e.g. `local[6]`; null: what spark-submit or the cluster gives. A continuous "
                    "query holds one task slot per partition, so with `local[N]` N must exceed the telemetry "
                    "topic's partitions (checked at start-up).",
    "spark.shuffle_partitions": "`spark.sql.shuffle.partitions` (also the state store's partitions of a new "
                                "checkpoint).",
    "spark.kafka_connector_version": "Version of `spark-sql-kafka-0-10_2.13`; set it to match your cluster.",
    "spark.log_level": "At `WARN` two warnings about what kappalake does on purpose are kept out: the one per "
                       "Delta MERGE about unpersisting its locally checkpointed source, and the one per stream "
                       "start about AQE, which streaming plans run without.",
    "spark.conf": "Any Spark configuration, e.g. `spark.driver.memory: 4g`.",
    "lake.root": "Where the tables live: `<root>/<layer>/<name>`; a local path or `s3://...`.",
    "lake.checkpoint_root": "Where the streams' checkpoints live: `<checkpoint_root>/<pipeline>`.",
    "lake.table_properties": "Delta properties of new tables (the shipped ones turn on optimized writes and "
                             "auto compaction).",
    "producer.linger_ms": "kafka-python `linger_ms`: how long a batch waits for more records.",
    "producer.max_request_size": "Largest request the producer sends (bytes); the broker and topic must "
                                 "allow records that large.",
    "producer.compression": "`lz4`, `zstd` and `snappy` need their Python package, checked at start-up.",
    "producer.acks": "Acknowledgements the producer waits for; idempotence needs `all` (`--acks` other than "
                     "`all` turns idempotence off).",
    "reference.seed": "Seed of the dimension tables (and of the simulated world's products, cities and zones).",
    "reference.products": "Catalog size of `dim.products`.",
    "reference.tables": "Names of the three dimension tables.",
    "alerts.max_attempts": "Tries per alert and notifier before it is recorded as `failed`.",
    "alerts.max_backoff_s": "Longest wait between two tries.",
    "alerts.deliveries_table": "Where every delivery outcome (delivered, failed, dropped) is appended.",
    "alerts.notifiers": "URLs and headers are masked in `config show`. A `class` notifier has a `name` attribute "
                        "and `send(alert: dict)`, raising on failure.",
    "quality.metrics_table": "One row per micro-batch and table: rows in, passed, warned, dropped, quarantined, "
                             "failures per rule.",
    "pipelines.<name>.source": "Where the pipeline reads: a Kafka topic or a Delta table (exactly one).",
    "pipelines.<name>.sink": "Where the pipeline writes: a Delta table or a Kafka topic (exactly one).",
    "pipelines.<name>.trigger": "When micro-batches run: exactly one of the keys below.",
    "pipelines.<name>.transforms": "Applied in order; the parameters a transform takes come from its Python "
                                   "signature (unknown or missing ones fail at start-up naming the key; a "
                                   "parameter typed DataFrame takes a table name): see "
                                   "[the transforms](../pipelines.md#transforms).",
    "pipelines.<name>.source.topic": "Logical topic (declared under `topics`) read with Spark's Kafka source.",
    "pipelines.<name>.source.table": "Delta table (`layer.name`) read as a stream; rewrite commits of a "
                                     "reprocess are skipped (`skipChangeCommits`).",
    "pipelines.<name>.source.starting_offsets": "Kafka sources: where a new checkpoint starts (`earliest`, "
                                                "`latest` or Spark's JSON of offsets).",
    "pipelines.<name>.source.max_offsets_per_trigger": "Kafka sources: at most this many records per micro-batch.",
    "pipelines.<name>.source.fail_on_data_loss": "Kafka sources: offsets Kafka deleted before the stream read "
                                                 "them stop it at start-up (true), or are recorded in "
                                                 "`monitoring.losses_table` and skipped (false).",
    "pipelines.<name>.source.min_partitions": "Kafka sources: Spark's `minPartitions`.",
    "pipelines.<name>.source.max_files_per_trigger": "At most this many files per micro-batch.",
    "pipelines.<name>.sink.table": "Delta table written idempotently per micro-batch (`txnAppId`/`txnVersion`).",
    "pipelines.<name>.sink.partition_by": "Partition columns of the table.",
    "pipelines.<name>.sink.keys": "`mode: merge`: the columns identifying a row (null-safe MERGE).",
    "pipelines.<name>.sink.rank": "`mode: merge`: re-rank the rows sharing `within` by `by` after each MERGE.",
    "pipelines.<name>.sink.rank.column": "The rank column written (1 = first).",
    "pipelines.<name>.sink.rank.within": "Rows sharing these columns are ranked together (e.g. `[window_start]`).",
    "pipelines.<name>.sink.publish_key": "Column used as the Kafka key of published rows.",
    "pipelines.<name>.sink.notify": "Also hand each committed row to the notifiers under `alerts`.",
    "pipelines.<name>.sink.routes": "A list: each item sends the batch's rows that match its `when` to a table or "
                                    "topic ([Routing](../routing.md)).",
    "pipelines.<name>.sink.routes.when": "SQL condition over the rows the sink keeps (default: every row); checked "
                                         "against their columns at start-up.",
    "pipelines.<name>.sink.routes.table": "Delta table (`layer.name`) the route writes, created at start-up; "
                                          "exactly once per batch.",
    "pipelines.<name>.sink.routes.topic": "Kafka topic (declared under `topics`, created at start-up), "
                                          "at-least-once; never the pipeline's own source.",
    "pipelines.<name>.sink.routes.columns": "The columns written (a topic route: its JSON value, nulls included); "
                                            "empty: every column.",
    "pipelines.<name>.sink.routes.key": "Topic routes: the column sent as the Kafka key.",
    "pipelines.<name>.sink.routes.id_column": "Topic routes: sent as the `idempotency-key` header and in the JSON, "
                                              "for consumers to drop repeats.",
    "pipelines.<name>.sink.routes.mode": "Table routes: `append`, or `merge` on `keys` (a latest-state table).",
    "pipelines.<name>.sink.routes.keys": "`mode: merge`: the columns identifying a row (e.g. `[device_id]`).",
    "pipelines.<name>.sink.routes.latest_by": "`mode: merge` (required): the newest row per key by this column wins, and "
                                              "never gives way to an older one.",
    "pipelines.<name>.sink.routes.partition_by": "Table routes: partition columns of the table.",
    "pipelines.<name>.trigger.processing_time": "Micro-batch interval, e.g. `5 seconds`.",
    "pipelines.<name>.trigger.available_now": "Process everything there is, then stop (pipelines run in waves by "
                                              "dependency).",
}


def config_reference() -> str:
    """Every key of the configuration models: type, default, meaning."""
    from kappalake.config import Config

    import yaml

    base = yaml.safe_load((CONF / "base.yaml").read_text())
    yaml_notes = yaml_comments(CONF / "base.yaml")
    used: set[str] = set()
    sections: list[tuple[str, type, Any]] = []  # (prefix, model, base.yaml value)

    def walk(prefix: str, model: type, shipped: Any) -> None:
        sections.append((prefix, model, shipped))
        for name, field in model.model_fields.items():
            inner = _model_of(field.annotation)
            if inner is not None:
                sub = shipped.get(name) if isinstance(shipped, dict) else None
                walk(f"{prefix}.{name}" if prefix else name, inner, sub)
            elif (value := _dict_model(field.annotation)) is not None:
                walk(f"{prefix}.{name}.<name>" if prefix else f"{name}.<name>", value, None)

    walk("", Config, base)
    out: list[str] = []
    missing: list[str] = []
    for prefix, model, shipped in sections:
        rows = []
        for name, field in model.model_fields.items():
            if name == "profile":
                continue
            key = f"{prefix}.{name}" if prefix else name
            is_section = _model_of(field.annotation) is not None or _dict_model(field.annotation) is not None
            note = yaml_notes.get(key, "") if not is_section else ""
            if ENUMERATION.fullmatch(note):
                note = ""  # the type column lists the values
            first = field.description or _model_comments(model).get(name, "") or note
            meaning = [first] if first else []
            if key in CONFIG_NOTES:
                used.add(key)
                meaning.append(CONFIG_NOTES[key])
            if is_section:
                target = key if _model_of(field.annotation) is not None else f"{key}.<name>"
                meaning.append(f"See [`{target}`](#{anchor(target)}).")
            if not meaning:
                missing.append(key)
            default = _default(field)
            if isinstance(shipped, dict) and name in shipped and not is_section:
                value = shipped[name]
                if flow(value) != default.strip("`"):
                    default += f" (base.yaml: {code(flow(value))})"
            rows.append([code(key), _type(field.annotation, field), default, " ".join(_sentence(m) for m in meaning)])
        title = f"`{prefix}`" if prefix else "Top level"
        doc = inspect.getdoc(model) if model.__doc__ and model is not Config else ""
        out += [f"## {title} {{#{anchor(prefix or 'top-level')}}}", ""]
        if doc and not doc.startswith(model.__name__ + "("):
            out += [cell(doc), ""]
        out += [table(["key", "type", "default", "meaning"], rows)]
    stale = sorted(set(CONFIG_NOTES) - used)
    if missing:
        raise GenerationError(f"configuration keys with no meaning: {', '.join(missing)}: give the field a "
                              f"description or comment in src/config/, or add it to CONFIG_NOTES in docs/generators/configuration.py")
    if stale:
        raise GenerationError(f"CONFIG_NOTES in docs/generators/configuration.py names keys the models do not have: {', '.join(stale)}")
    return "\n".join(out)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", ":", "!", "?")) else text + "."


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return args[0], True
    return tp, False


def _model_of(tp: Any) -> type | None:
    from pydantic import BaseModel

    tp, _ = _unwrap_optional(tp)
    if typing.get_origin(tp) is list:  # a list of sections (routes): each item is one
        tp = typing.get_args(tp)[0]
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _dict_model(tp: Any) -> type | None:
    if typing.get_origin(tp) is dict:
        return _model_of(typing.get_args(tp)[1])
    return None


def _type(tp: Any, field: Any = None) -> str:
    inner, optional = _unwrap_optional(tp)
    text = _type_name(inner)
    bounds = []
    for m in getattr(field, "metadata", []) or []:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{sign} {getattr(m, attr)}")
    if bounds:
        text += " (" + ", ".join(bounds) + ")"
    return text + (" or null" if optional else "")


def _type_name(tp: Any) -> str:
    from pydantic import BaseModel, SecretStr

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        base = _type_name(args[0])
        pattern = next((getattr(m, "pattern", None) for m in args[1:] if getattr(m, "pattern", None)), None)
        return f"{base} matching {code(pattern)}" if pattern else base
    if origin is typing.Literal:
        return "one of " + ", ".join(code(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if tp is SecretStr:
        return "secret (`${env:VAR}` only)"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    return {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}.get(tp, str(tp))


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "required"
    if _model_of(field.annotation) is not None:
        return ""
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    return code(flow(value))


def _model_comments(model: type) -> dict[str, str]:
    """Field -> the comment next to it in the class source (the lines just above, and the line's tail)."""
    src = inspect.getsource(model)
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = src.splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines, 1):
        m = re.match(r"^    (\w+)\s*:", line)
        if not m or m.group(1) not in model.model_fields:
            continue
        above = []
        j = i - 1
        while j >= 1 and lines[j - 1].strip().startswith("#"):
            above.insert(0, comments.get(j, ""))
            j -= 1
        parts = [" ".join(above)] + ([comments[i]] if i in comments else [])
        text = " ".join(p for p in parts if p)
        if text:
            out[m.group(1)] = text
    return out


def yaml_comments(path: Path) -> dict[str, str]:
    """Dotted key -> the comment at the end of its line in a YAML file (continuation lines included)."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last_key, last_col = None, -1
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if last_key is not None and line.index("#") == last_col:
                out[last_key] += " " + stripped.lstrip("#").strip()
            else:
                last_key = None
            continue
        m = re.match(r"^( *)([\w.-]+):(.*)$", line)
        if not m:
            last_key = None
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        dotted = ".".join(k for _, k in stack)
        hash_at = _comment_start(rest)
        if hash_at is not None:
            out[dotted] = rest[hash_at + 1:].strip()
            last_key, last_col = dotted, len(line) - len(rest) + hash_at
        else:
            last_key = None
    return out


def _comment_start(text: str) -> int | None:
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return i
    return None


def config_profiles() -> str:
    """What each profile file changes on top of base.yaml, key by key."""
    import yaml

    out = []
    for path in sorted(CONF.glob("*.yaml")):
        if path.stem == "base":
            continue
        data = yaml.safe_load(path.read_text()) or {}
        notes = yaml_comments(path)
        lines = path.read_text().splitlines()
        head = " ".join(ln.lstrip("# ").strip() for ln in lines[:next(i for i, ln in enumerate(lines)
                                                                    if not ln.startswith("#"))])
        rows = [[code(k), code(flow(v)), notes.get(k, "")] for k, v in _flatten(data)]
        out += [f"### `{path.stem}` (`conf/{path.name}`)", "", cell(head), "", table(["key", "value", "note"], rows)]
    return "\n".join(out)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        items = []
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v and not (prefix.endswith("conf") or k in ("conf", "properties", "options")):
                items += _flatten(v, key)
            elif isinstance(v, dict) and k in ("conf", "properties", "options"):
                items += [(f"{key}.{ck}", cv) for ck, cv in v.items()]
            else:
                items.append((key, v))
        return items
    return [(prefix, data)]


def shipped_pipelines() -> str:
    """The pipelines of the shipped configuration (local profile): source, transforms, sink, trigger."""
    from kappalake.config import load_config
    from kappalake.pipelines.plan import validate_pipelines

    cfg = load_config("local", CONF)
    rows = []
    for name in validate_pipelines(cfg):
        p = cfg.pipelines[name]
        source = f"topic {p.source.topic}" if p.source.topic else p.source.table
        transforms = ", ".join(t if isinstance(t, str) else t["name"] for t in p.transforms)
        sink = f"topic {p.sink.topic}" if p.sink.topic else p.sink.table
        how = p.sink.mode + (f" on {', '.join(p.sink.keys)}" if p.sink.keys else "")
        extra = [f"quarantine {p.sink.quarantine}"] if p.sink.quarantine else []
        extra += [f"output {p.sink.output_mode}"] if p.sink.mode == "merge" and p.sink.output_mode != "update" else []
        extra += [f"rank {p.sink.rank.column}"] if p.sink.rank else []
        extra += [f"publish to {p.sink.publish}"] if p.sink.publish else []
        extra += ["notify"] if p.sink.notify else []
        trig = p.trigger
        trigger = (f"every {trig.processing_time}" if trig.processing_time else
                   f"continuous {trig.continuous}" if trig.continuous else "available now")
        rows.append([code(name), source, transforms, f"{sink} ({how}{'; ' + '; '.join(extra) if extra else ''})",
                     trigger])
    return table(["pipeline", "reads", "transforms", "writes", "trigger"], rows)


def lake_tables() -> str:
    """Every table the shipped configuration names, and who writes it."""
    from kappalake.config import load_config

    cfg = load_config("local", CONF)
    writers: dict[str, list[str]] = {}
    for n, p in cfg.pipelines.items():
        if p.sink.table:
            writers.setdefault(p.sink.table, []).append(n)
        if p.sink.quarantine:
            writers.setdefault(p.sink.quarantine, []).append(f"{n} (quarantined rows)")
    extra = {cfg.quality.metrics_table: "every pipeline with a quality gate (one row per micro-batch)",
             cfg.monitoring.metrics_table: "the job's StreamingQueryListener (every micro-batch of every query)",
             cfg.monitoring.lag_table: "the job (consumer lag per partition, at each flush)",
             cfg.alerts.deliveries_table: "the notifiers (one row per delivery outcome)",
             cfg.monitoring.losses_table: "the retention guard (offsets Kafka deleted unread; when allowed)"}
    for t in cfg.reference.tables.values():
        extra[t] = "`kappalake reference create` (and the demo)"
    rows = []
    for t in sorted(set(cfg.tables()) | {cfg.monitoring.losses_table}):
        who = ", ".join(f"`{w}`" if " " not in w else w for w in writers.get(t, [])) or extra.get(t, "")
        rows.append([code(t), code(cfg.lake.table_path(t).replace(str(REPO) + "/", "")), who])
    return table(["table", "path (local profile)", "written by"], rows)
