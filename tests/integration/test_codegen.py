"""Every pipeline's plan compiles with whole-stage code generation, each method within the JVM's
64 KB limit, so Spark never falls back to interpreting it (a parse plan of ~17,900 generated
lines once did: "Code grows beyond 64 KB", and silver ran 40x slower, issue 27).

The suite's JVMs run with code generation off (tests/conftest.py), so this test turns it on for
its own plans, compiles them as Spark would before running them and reads the bytecode sizes."""

from __future__ import annotations

import pytest

from kappalake.pipelines.compose import build_checked_batch

JVM_METHOD_LIMIT = 65535  # spark.sql.codegen.hugeMethodLimit: past it Spark drops whole-stage codegen for the subtree


@pytest.fixture
def codegen_on(spark):
    """Whole-stage codegen as in production, without adaptive execution (whose initial plan hides
    the code-generated subtrees until it runs)."""
    keys = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK",
            "spark.sql.adaptive.enabled": "false"}
    before = {k: spark.conf.get(k, None) for k in keys}
    for k, v in keys.items():
        spark.conf.set(k, v)
    yield
    for k, v in before.items():
        spark.conf.unset(k) if v is None else spark.conf.set(k, v)


def compiled_method_sizes(spark, df) -> list[int]:
    """Compile every whole-stage-codegen subtree of ``df``'s physical plan (raising if Janino cannot)
    and return each one's largest method in bytes of bytecode."""
    debug = getattr(getattr(spark._jvm.org.apache.spark.sql.execution.debug, "package$"), "MODULE$")
    subtrees = debug.codegenStringSeq(df._jdf.queryExecution().executedPlan()).iterator()
    sizes = []
    while subtrees.hasNext():
        sizes.append(subtrees.next()._3().maxMethodCodeSize())
    return sizes


def test_every_pipeline_compiles_within_the_jvm_method_limit(spark, demo_lake, codegen_on):
    cfg, _ = demo_lake
    from_tables = [n for n, p in cfg.pipelines.items() if p.source.table is not None]
    assert {"silver_clickstream", "silver_telemetry", "gold_page_minute", "alerts_telemetry"} <= set(from_tables)
    largest = {}
    for name in from_tables:
        sizes = compiled_method_sizes(spark, build_checked_batch(spark, cfg.pipeline(name)))
        assert sizes, f"{name}: no code-generated subtree (is whole-stage codegen on?)"
        largest[name] = max(sizes)
    too_big = {n: s for n, s in largest.items() if s > JVM_METHOD_LIMIT}
    assert not too_big, f"methods past the JVM's 64 KB limit (whole-stage codegen would fall back): {too_big}"
