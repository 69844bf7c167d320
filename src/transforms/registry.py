"""Transforms by the names that ``conf/`` pipelines use."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame

from kappalake.transforms.bronze import bronze_record

Transform = Callable[[DataFrame], DataFrame]

TRANSFORMS: dict[str, Transform] = {
    "bronze_record": bronze_record,
}


def get_transform(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise KeyError(f"unknown transform {name!r}; known transforms: {', '.join(sorted(TRANSFORMS))}") from None
