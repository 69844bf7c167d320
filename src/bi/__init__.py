"""Consumers of the lake: named BI queries shared by the CLI, notebooks and dashboards."""
