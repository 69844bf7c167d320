"""Point reads of the lake without Spark: a latest-state table (the newest row per vehicle, per
user...) looked up by key in well under a second, read with delta-rs (the Rust Delta reader),
for the CLI's ``kappalake lookup`` and the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kappalake.config import LakeConf
from kappalake.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa


def lookup(lake: LakeConf, table: str, where: dict[str, str] | None = None, limit: int | None = None) -> pa.Table:
    """The rows of ``table`` whose columns equal ``where`` (values given as text, cast to each
    column's type), at most ``limit``, as an Arrow table (no Python object per row until asked)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = lake.table_path(table)
    try:
        dataset = DeltaTable(path).to_pyarrow_dataset()
    except TableNotFoundError:
        raise ConfigError(f"table {table} does not exist at {path} (yet): run the pipeline that writes it") from None
    schema = dataset.schema
    condition = None
    for column, text in (where or {}).items():
        if column not in schema.names:
            raise ConfigError(f"table {table} has no column {column!r}; columns: {', '.join(schema.names)}")
        try:
            value = pa.scalar(text).cast(schema.field(column).type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ConfigError(f"{column}={text!r}: not a value of {table}.{column} "
                              f"({schema.field(column).type})") from None
        term = pc.field(column) == value
        condition = term if condition is None else condition & term
    return dataset.head(limit, filter=condition) if limit is not None else dataset.to_table(filter=condition)


def parse_where(terms: list[str]) -> dict[str, str]:
    """``column=value`` terms as a dict; a term without ``=`` is a one-line error."""
    out = {}
    for term in terms:
        column, eq, value = term.partition("=")
        if not eq or not column:
            raise ConfigError(f"{term!r}: give column=value, e.g. device_id=truck-0001")
        out[column.strip()] = value
    return out
