"""A failure that repeats on every poll is warned about once per interval, the interval backing off."""

import logging

from scheduler.executors.throttled_log import ThrottledWarnings


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_repeating_failure_warns_once_per_interval_with_backoff(caplog):
    clock = Clock()
    warnings = ThrottledWarnings(logging.getLogger("test.throttle"), first_interval_s=10, max_interval_s=40, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        logged_at = []
        for _ in range(200):  # a poll every half second for 100 s
            if warnings.warn("poll", "API server unreachable"):
                logged_at.append(clock.now - 1000.0)
            clock.now += 0.5
    assert logged_at == [0.0, 10.0, 30.0, 70.0]  # intervals 10, 20, 40, then capped at 40
    messages = warnings_logged(caplog)
    assert len(messages) == 4
    assert messages[0].startswith("API server unreachable; next warning")
    assert "(19 more like it since the last warning)" in messages[1]


def test_kinds_are_limited_apart_and_a_success_starts_afresh(caplog):
    clock = Clock()
    warnings = ThrottledWarnings(logging.getLogger("test.throttle"), first_interval_s=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        assert warnings.warn("poll", "poll failed")
        assert warnings.warn("stats", "stats failed")  # another kind is not held back by the first
        assert not warnings.warn("poll", "poll failed")
        warnings.clear("poll")
        assert warnings.warn("poll", "poll failed again")
    assert len(warnings_logged(caplog)) == 3
