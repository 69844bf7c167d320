"""Privacy: keyed pseudonyms (HMAC-SHA256 in Spark SQL) and coarsened coordinates."""

from __future__ import annotations

import hashlib

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_BLOCK = 64  # SHA-256 block size


def hmac_sha256(col: Column, secret: str) -> Column:
    """HMAC-SHA256 (RFC 2104) of a string column as lowercase hex, with built-in functions only.

    ``sha2(opad || unhex(sha2(ipad || message)))`` where the pads are derived from the secret
    in Python; the secret itself never appears in the plan, only the two pads.
    """
    key = secret.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in key).hex()
    opad = bytes(b ^ 0x5C for b in key).hex()
    inner = F.unhex(F.sha2(F.concat(F.unhex(F.lit(ipad)), F.encode(col, "UTF-8")), 256))
    return F.when(col.isNotNull(), F.sha2(F.concat(F.unhex(F.lit(opad)), inner), 256))


def pseudonymise(df: DataFrame, fields: list[str], secret: str) -> DataFrame:
    """Replace each of ``fields`` by its keyed hash: stable per secret, useless without it.

    The same value always maps to the same pseudonym, so joins, distinct counts and
    sessions still work; rotating the secret unlinks old and new data.
    """
    missing = [f for f in fields if f not in df.columns]
    if missing:
        raise ValueError(f"pseudonymise: no column(s) {', '.join(missing)}; columns: {', '.join(df.columns)}")
    return df.withColumns({f: hmac_sha256(F.col(f).cast("string"), secret) for f in fields})


def coarsen(df: DataFrame, fields: list[str], decimals: int = 1) -> DataFrame:
    """Round coordinates to ``decimals`` places (1 decimal of latitude is ~11 km)."""
    return df.withColumns({f: F.round(F.col(f), decimals) for f in fields})
