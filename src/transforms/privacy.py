"""Privacy: keyed pseudonyms (HMAC-SHA256 in Spark SQL) and coarsened coordinates."""

from __future__ import annotations

import hashlib

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StructField, StructType

from kappalake.frames import local_frame

_BLOCK = 64  # SHA-256 block size


PAD_COLUMNS = ("_kl_hmac_ipad", "_kl_hmac_opad")


def hmac_pads(secret: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer pads of ``secret`` (RFC 2104): each is the key XOR a
    constant, so either one gives the key away."""
    key = secret.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256(col: Column, ipad: Column, opad: Column) -> Column:
    """HMAC-SHA256 of a string column as lowercase hex, with built-in functions only:
    ``sha2(opad || unhex(sha2(ipad || message)))``, the pads being binary columns."""
    inner = F.unhex(F.sha2(F.concat(ipad, F.encode(col, "UTF-8")), 256))
    return F.when(col.isNotNull(), F.sha2(F.concat(opad, inner), 256))


def pseudonymise(df: DataFrame, fields: list[str], secret: str) -> DataFrame:
    """Replace each of ``fields`` by its keyed hash: stable per secret, useless without it.

    The same value always maps to the same pseudonym, so joins, distinct counts and
    sessions still work; rotating the secret unlinks old and new data.

    The pads reach the rows as data (a one-row table, broadcast), never as literals: a literal
    is printed wherever the plan is (explain, the Spark UI's SQL tab and its plan graph, event
    logs), and a pad printed is the key.
    """
    missing = [f for f in fields if f not in df.columns]
    if missing:
        raise ValueError(f"pseudonymise: no column(s) {', '.join(missing)}; columns: {', '.join(df.columns)}")
    ipad, opad = PAD_COLUMNS
    # Held by the JVM: a Python-made frame in a streaming plan starts Python workers every batch.
    pads = local_frame(df.sparkSession, [hmac_pads(secret)],
                       StructType([StructField(ipad, BinaryType()), StructField(opad, BinaryType())]))
    keyed = df.crossJoin(F.broadcast(pads))
    return keyed.withColumns({f: hmac_sha256(F.col(f).cast("string"), F.col(ipad), F.col(opad))
                              for f in fields}).drop(ipad, opad)


def coarsen(df: DataFrame, fields: list[str], decimals: int = 1) -> DataFrame:
    """Round coordinates to ``decimals`` places (1 decimal of latitude is ~11 km)."""
    return df.withColumns({f: F.round(F.col(f), decimals) for f in fields})
