"""The benchmark feed's live pool: its first templates, the idx the join matches on kept."""

from kappalake.bench.feed import LIVE_TEMPLATES, Pool


def test_live_pool_is_the_first_templates():
    rows = [(i, b"k", "template", None, i, i, 0, 0) for i in range(LIVE_TEMPLATES + 10)]
    pool = Pool("clickstream", rows, span_ms=99)
    live = pool.live()
    assert len(live) == LIVE_TEMPLATES and live.rows == rows[:LIVE_TEMPLATES]
    assert [r[0] for r in live.rows] == list(range(LIVE_TEMPLATES))  # expand() joins n % size on idx
    assert pool.live() is live and live.live() is live
    small = Pool("clickstream", rows[:10])
    assert small.live() is small
