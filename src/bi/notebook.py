"""One line to open the lake from a notebook: configuration, SparkSession, tables and named views.

    from kappalake.bi.notebook import open_lake
    cfg, spark = open_lake()          # then: spark.sql("SELECT * FROM top_products")

The profile and extra configuration come from the environment, so the same notebook runs on
the demo's lake, on EMR (``KAPPALAKE_PROFILE=emr``) and in the test suite:
``KAPPALAKE_PROFILE`` (default local), ``KAPPALAKE_CONFIG`` (extra YAML files, separated by
``os.pathsep``), ``KAPPALAKE_CONF_DIR`` (the directory holding base.yaml). Relative paths in
the configuration (``lake.root: lake``) are the project directory's, the one holding ``conf/``:
a notebook started in ``notebooks/`` works there.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from kappalake.bi.queries import register_views
from kappalake.config import Config, default_conf_dir, load_config
from kappalake.session import get_spark


def open_lake(profile: str | None = None, *extra_files: str) -> tuple[Config, SparkSession]:
    """The configuration and a SparkSession with the lake's tables and named queries registered."""
    files = [str(Path(f).resolve()) for f in os.environ.get("KAPPALAKE_CONFIG", "").split(os.pathsep) + list(extra_files)
             if f]
    project = default_conf_dir().resolve().parent
    if Path.cwd() != project and (project / "conf" / "base.yaml").is_file():
        os.chdir(project)
    cfg = load_config(profile or os.environ.get("KAPPALAKE_PROFILE", "local"), extra_files=files)
    spark = get_spark(cfg, app_name=f"{cfg.app_name}-notebook")
    register_views(spark, cfg)
    return cfg, spark
