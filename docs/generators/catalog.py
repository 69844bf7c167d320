"""What the pipelines are made of: transforms, named queries, fault kinds, expectation types,
policies and the shipped suites."""

from __future__ import annotations

import inspect

from generators.common import CONF, code, table, flow


def transforms_reference() -> str:
    """Every transform a pipeline can name, its parameters (from the signature) and docstring."""
    from kappalake.transforms.registry import SECRET_PARAM, TRANSFORMS

    out = []
    for name, fn in TRANSFORMS.items():
        params = []
        for p in list(inspect.signature(fn).parameters.values())[1:]:
            if p.name == SECRET_PARAM:
                params.append(f"`{p.name}` (from `privacy.secret`)")
                continue
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
            kind = " (a table name)" if ann == "DataFrame" else ""
            default = "" if p.default is inspect.Parameter.empty else f" = {code(flow(p.default))}"
            params.append(f"`{p.name}`{default}{kind}")
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0]
        out.append([code(name), f"`{fn.__module__.removeprefix('kappalake.')}`", ", ".join(params) or "(none)",
                    doc])
    return table(["transform", "module", "parameters", "what it does"], out)


def bi_queries() -> str:
    from kappalake.bi.queries import QUERIES

    rows = [[code(q.name), q.description, ", ".join(q.tables)] for q in QUERIES.values()]
    return table(["query", "what it answers", "tables read"], rows)


def fault_kinds() -> str:
    from kappalake.ingest.faults import FAULT_HELP, FAULT_KINDS

    rows = [[code(k), code("--" + k.replace("_", "-") + " RATE"), FAULT_HELP[k]] for k in FAULT_KINDS]
    return table(["kind (`kl-fault` header)", "produce option", "what it does"], rows)


# -- expectations ----------------------------------------------------------------------------

_GX_COMMON = {"id", "meta", "notes", "result_format", "description", "catch_exceptions", "rendered_content",
              "severity", "windows", "batch_id", "row_condition", "condition_parser"}


def expectation_types() -> str:
    """The GX expectation types kappalake checks per row in the stream, with their arguments."""
    import os

    from kappalake.quality.rules import ROW_LEVEL, TYPE_CHECKS

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from great_expectations.expectations.registry import get_expectation_impl

    rows = []
    for t in sorted(ROW_LEVEL):
        cls = get_expectation_impl(t)
        fields = getattr(cls, "model_fields", None) or getattr(cls, "__fields__", {})  # GX 1.x: pydantic v1 API
        args = [n for n in fields if n not in _GX_COMMON]
        if t in TYPE_CHECKS:
            how = "once, at start-up, against the schema the pipeline writes"
        elif t == "expect_column_values_to_be_unique":
            how = "per row, unique within the micro-batch"
        else:
            how = "per row, in every micro-batch (a Spark column)"
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0]
        rows.append([code(t), ", ".join(f"`{a}`" for a in args), how, summary])
    return table(["type", "arguments", "checked", "GX's description"], rows)


def quality_policies() -> str:
    from kappalake.config.shapes import POLICIES, SCOPES

    return (f"Policies (`meta.policy`): {', '.join(code(p) for p in POLICIES)}. "
            f"Scopes (`meta.scope`): {', '.join(code(s) for s in SCOPES)}.\n")


def shipped_suites() -> str:
    """The rules of the suites in conf/expectations/, as the pipelines load them."""
    from kappalake.config import load_config
    from kappalake.quality.suites import load_suite

    cfg = load_config("local", CONF)
    out = []
    for t in sorted(cfg.quality.suites):
        suite = load_suite(cfg.quality, t)
        rows = []
        for r in suite.rules:
            args = {k: v for k, v in r.kwargs.items() if k not in ("column", "condition_parser")}
            rows.append([code(r.name), code(r.type.removeprefix("expect_")), ", ".join(r.columns()),
                         code(flow(args)) if args else "", r.policy, r.scope])
        out += [f"### {t}", "", f"`conf/expectations/{t}.yaml`", "",
                table(["rule", "type (expect_...)", "column", "arguments", "policy", "scope"], rows)]
    return "\n".join(out)
