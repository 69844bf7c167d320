"""MkDocs hook: the parts of the documentation that are generated from the code at build time.

A page holds a marker such as ``<!-- generated: cli -->`` where a reference belongs; this hook
replaces it with what the code says now (the argument parser, the configuration models, the
expectation types kappalake compiles, ...), so those parts can never drift from the code. An
unknown marker, or a configuration key without a meaning, stops the build.

``mkdocs.yml`` names this file under ``hooks:`` and keeps it and the generators out of the site
(``exclude_docs``); each generated part is built by a module of ``docs/generators/`` by subject.
Run ``python docs/hooks.py NAME`` to print one generated part.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # MkDocs loads this file by path, not as a package

from generators.catalog import (bi_queries, expectation_types, fault_kinds, quality_policies,  # noqa: E402
                                shipped_suites, transforms_reference)
from generators.cli import cli_reference, spark_submit_usage  # noqa: E402
from generators.common import GenerationError  # noqa: E402
from generators.configuration import (config_profiles, config_reference, lake_tables,  # noqa: E402
                                      shipped_pipelines)
from generators.errors import environment_failures, error_messages  # noqa: E402
from generators.figures import bench_partial, bench_targets, chaos_run, silver_profile  # noqa: E402

MARKER = re.compile(r"<!-- generated: ([\w-]+) -->")


# -- hook ------------------------------------------------------------------------------------

def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **_: Any) -> str:
    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in GENERATORS:
            raise _abort(f"{page.file.src_uri}: unknown generated part {name!r}; known: {', '.join(GENERATORS)}")
        try:
            return GENERATORS[name]().rstrip() + "\n"
        except GenerationError as e:
            raise _abort(f"{page.file.src_uri}: {name}: {e}") from None

    return MARKER.sub(replace, markdown)


def _abort(message: str) -> Exception:
    from mkdocs.exceptions import PluginError

    return PluginError(message)


GENERATORS = {
    "spark-submit": spark_submit_usage,
    "cli": cli_reference,
    "config": config_reference,
    "config-profiles": config_profiles,
    "pipelines": shipped_pipelines,
    "tables": lake_tables,
    "transforms": transforms_reference,
    "queries": bi_queries,
    "faults": fault_kinds,
    "expectations": expectation_types,
    "policies": quality_policies,
    "suites": shipped_suites,
    "errors": error_messages,
    "environment-failures": environment_failures,
    "bench-targets": bench_targets,
    "bench-partial": bench_partial,
    "chaos-run": chaos_run,
    "silver-profile": silver_profile,
}


if __name__ == "__main__":
    for arg in sys.argv[1:] or list(GENERATORS):
        print(GENERATORS[arg]())
