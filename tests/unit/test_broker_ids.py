"""The local broker's KRaft cluster id."""

from __future__ import annotations

import uuid

from kappalake.ingest import broker


def test_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xf8... encodes to "-" first in URL-safe base64: kafka-storage would read it as an option.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x10" * 16)])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(draws))
    cid = broker._cluster_id()
    assert cid == "EBAQEBAQEBAQEBAQEBAQEA"
    assert len(cid) == 22 and not cid.startswith("-")
