"""The episode state machine behind the anomaly detectors, on synthetic sequences (no Spark)."""

from __future__ import annotations

import pytest

from kappalake.transforms.episodes import EpisodeRules, Episodes, alert_id

RULES = EpisodeRules("temperature", "engine_temp_c", min_duration_ms=10_000, idle_ms=60_000)


def run(values: list[tuple[int, float]], rules: EpisodeRules = RULES, high: float | None = 100.0,
        low: float | None = None) -> list[dict]:
    """Feed (second, value) readings; return the events."""
    m = Episodes(rules, "truck-0001")
    out = []
    for sec, v in values:
        out += m.feed(sec * 1000, v, low, high)
    return out


def excursion(seconds: int, start: int = 100, hot: float = 110.0) -> list[tuple[int, float]]:
    """Normal readings every second, then ``seconds`` + 1 hot readings (a ``seconds`` span), then normal."""
    return ([(t, 90.0) for t in range(start - 20, start)] + [(t, hot) for t in range(start, start + seconds + 1)]
            + [(t, 90.0) for t in range(start + seconds + 1, start + seconds + 20)])


def test_a_9_second_excursion_does_not_alert():
    assert run(excursion(9)) == []


def test_a_10_second_excursion_opens_then_closes_one_alert():
    events = run(excursion(10))
    assert [(e["event"], e["reason"]) for e in events] == [("open", "above_max"), ("close", "back_in_band")]
    opened, closed = events
    assert opened["alert_id"] == closed["alert_id"] == alert_id("temperature", "truck-0001", "engine_temp_c", 100_000)
    assert opened["started_ms"] == 100_000 and opened["event_ms"] == 110_000  # open when it has lasted 10 s
    assert closed["event_ms"] == closed["ended_ms"] == 111_000  # the first reading back in band
    assert closed["duration_s"] == 10.0 and closed["readings"] == 11 and closed["peak"] == 110.0


def test_one_alert_per_episode_not_per_reading():
    events = run(excursion(60))
    assert [e["event"] for e in events] == ["open", "close"]
    assert events[1]["readings"] == 61


def test_two_episodes_give_two_alerts():
    readings = excursion(12, start=100) + excursion(15, start=200)
    events = run(readings)
    assert [e["event"] for e in events] == ["open", "close", "open", "close"]
    assert events[0]["alert_id"] != events[2]["alert_id"]
    assert [e["started_ms"] for e in events[::2]] == [100_000, 200_000]


def test_an_in_band_reading_breaks_the_run():
    readings = [(t, 110.0) for t in range(0, 6)] + [(6, 95.0)] + [(t, 110.0) for t in range(7, 13)]
    assert run(readings) == []  # two runs of 5 s, never 10 s in a row


def test_below_min_and_the_peak_is_the_most_extreme_value():
    readings = [(0, 4.0)] + [(t, 0.5 - t / 100) for t in range(1, 13)] + [(13, 4.0)]
    events = run(readings, high=7.0, low=1.0)
    assert [(e["event"], e["reason"]) for e in events] == [("open", "below_min"), ("close", "back_in_band")]
    assert events[1]["peak"] == pytest.approx(0.5 - 12 / 100)


def test_repeated_and_older_readings_are_ignored():
    readings = excursion(10)
    assert run(readings + readings[:30]) == run(readings)
    doubled = [r for r in readings for _ in (0, 1)]  # every reading sent twice
    assert run(doubled) == run(readings)


def test_silence_closes_an_open_alert_with_no_data_and_forgets_the_key():
    m = Episodes(RULES, "truck-0001")
    events = []
    for t in range(0, 12):
        events += m.feed(t * 1000, 120.0, None, 100.0)
    assert [e["event"] for e in events] == ["open"]
    closed = m.expire(11_000 + RULES.idle_ms)
    assert [(e["event"], e["reason"], e["event_ms"]) for e in closed] == [("close", "no_data", 71_000)]
    assert m.empty
    # A reading after a gap longer than idle_ms expires the old episode first, with the same result.
    m2 = Episodes(RULES, "truck-0001")
    events2 = [e for t in range(0, 12) for e in m2.feed(t * 1000, 120.0, None, 100.0)]
    events2 += m2.feed(200_000, 90.0, None, 100.0)
    assert events2 == events + closed


def test_rolling_baseline_flags_deviation_inside_the_static_band():
    rules = EpisodeRules("temperature", "cargo_temp_c", min_duration_ms=10_000, baseline_k=4.0,
                         baseline_min_samples=30, min_std=0.5)
    steady = [(t, 4.0 + (0.1 if t % 2 else -0.1)) for t in range(0, 60)]
    warm = [(t, 6.8) for t in range(60, 75)]  # inside the static band [1, 7], far from this device's normal
    events = run(steady + warm + [(75, 4.0)], rules=rules, low=1.0, high=7.0)
    assert [(e["event"], e["reason"]) for e in events] == [("open", "above_baseline"), ("close", "back_in_band")]
    assert events[0]["high"] == pytest.approx(4.0 + 4 * 0.5, abs=0.05)  # mean + k * max(std, min_std)
    # Before the baseline has min_samples readings only the static band counts.
    assert run(steady[:20] + [(t, 6.8) for t in range(20, 35)], rules=rules, low=1.0, high=7.0) == []


def test_baseline_ignores_out_of_band_readings():
    rules = EpisodeRules("temperature", "engine_temp_c", min_duration_ms=10_000, baseline_k=4.0,
                         baseline_min_samples=10, min_std=1.0)
    m = Episodes(rules, "truck-0001")
    for t in range(0, 20):
        m.feed(t * 1000, 90.0, None, 100.0)
    before = dict(m.state)
    for t in range(20, 25):
        m.feed(t * 1000, 130.0, None, 100.0)
    assert m.state["mean"] == before["mean"] and m.state["n"] == before["n"]


def test_value_none_closes_an_open_rate_alert():
    rules = EpisodeRules("error_rate", "error_rate", min_duration_ms=0, idle_ms=300_000)
    m = Episodes(rules, "web:/checkout")
    events = m.feed(30_000, 0.2, None, 0.05) + m.feed(60_000, 0.25, None, 0.05) + m.feed(90_000, None)
    assert [(e["event"], e["reason"]) for e in events] == [("open", "above_max"), ("close", "no_data")]


def test_a_lasting_shift_from_the_baseline_becomes_the_new_normal():
    rules = EpisodeRules("temperature", "cargo_temp_c", min_duration_ms=10_000, baseline_k=4.0,
                         baseline_min_samples=30, min_std=0.5, baseline_reset_ms=120_000)
    steady = [(t, 4.0 + (0.1 if t % 2 else -0.1)) for t in range(0, 60)]
    shifted = [(t, 6.5 + (0.1 if t % 2 else -0.1)) for t in range(60, 400)]  # new load: 6.5 C, still in [1, 7]
    events = run(steady + shifted, rules=rules, low=1.0, high=7.0)
    assert [(e["event"], e["reason"], e["event_ms"] // 1000) for e in events] == [
        ("open", "above_baseline", 70), ("close", "new_normal", 180)]
    # after re-learning, the new level is normal and a move back to 4 C is the deviation
    assert [(e["event"], e["reason"]) for e in run(steady + shifted + [(t, 4.0) for t in range(400, 420)],
                                                   rules=rules, low=1.0, high=7.0)][2:] == [("open", "below_baseline")]


def test_static_limits_are_never_reset():
    rules = EpisodeRules("temperature", "engine_temp_c", min_duration_ms=10_000, baseline_k=4.0,
                         baseline_min_samples=10, min_std=1.0, baseline_reset_ms=60_000)
    events = run([(t, 90.0) for t in range(0, 20)] + [(t, 120.0) for t in range(20, 300)], rules=rules)
    assert [(e["event"], e["reason"]) for e in events] == [("open", "above_max")]


BASELINED = EpisodeRules("temperature", "engine_temp_c", min_duration_ms=10_000, baseline_k=4.0,
                         baseline_min_samples=10, min_std=1.0, baseline_reset_ms=60_000)


def test_a_baseline_deviation_that_breaks_the_static_limit_is_reported_as_such():
    normal = [(t, 90.0) for t in range(0, 20)]
    warming = [(t, 96.0) for t in range(20, 25)] + [(t, 110.0) for t in range(25, 40)]
    events = run(normal + warming + [(40, 90.0)], rules=BASELINED)
    assert [(e["event"], e["reason"], e["high"]) for e in events] == [("open", "above_max", 100.0),
                                                                      ("close", "back_in_band", 100.0)]
    assert events[0]["started_ms"] == 20_000 and events[1]["peak"] == 110.0


def test_an_episode_that_broke_a_static_limit_never_becomes_the_new_normal():
    normal = [(t, 90.0) for t in range(0, 20)]
    # hot for a while, then stuck just off this vehicle's baseline (inside the static band) for long
    events = run(normal + [(t, 105.0) for t in range(20, 40)] + [(t, 97.0) for t in range(40, 200)], rules=BASELINED)
    assert [(e["event"], e["reason"]) for e in events] == [("open", "above_max")]
