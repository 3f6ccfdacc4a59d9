"""The replay's spot market layer: savings where the slack allows, the deadline kept where it does not."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from replay_spot import PlacedRun, replay_markets  # noqa: E402


def runs(n=300, seconds=4 * 3600.0, spot_price=0.3, expected_factor=1.0, wait=0.0):
    return [PlacedRun(idx=i, arrival=i * 60.0, start=i * 60.0 + wait, seconds=seconds,
                      expected_s=seconds * expected_factor, price=1.0, spot_price=spot_price, gpus=1)
            for i in range(n)]


def figures(placed, **kw):
    args = dict(interruptions_per_hour=0.5, checkpoint_interval_s=1800.0, deadline_factor=2.0, seed=1)
    return replay_markets(placed, **{**args, **kw})


def test_spot_saves_and_keeps_every_deadline_where_always_spot_does_not():
    out = figures(runs())
    assert out["ondemand_deadline_misses"] == 0
    assert out["deadline_misses"] == 0
    assert out["spot_policy_usd"] < 0.75 * out["ondemand_only_usd"]
    assert out["preemptions"] > 0 and out["lost_hours"] > 0
    # with no checkpoints and a hot market, always-spot runs past deadlines
    hot = figures(runs(), interruptions_per_hour=1.0, checkpoint_interval_s=0.0)
    assert hot["always_spot_deadline_misses"] > 0
    assert hot["deadline_misses"] == 0


def test_no_slack_means_on_demand():
    out = figures(runs(), deadline_factor=1.0)
    assert out["deadline_misses"] == 0 and out["spot_attempts"] == 0
    assert out["spot_policy_usd"] == out["ondemand_only_usd"]


def test_estimates_that_fall_short_still_keep_the_deadline():
    # the core expects a fifth of the true time; the run's own progress corrects it
    out = figures(runs(n=400, expected_factor=0.2))
    assert out["deadline_misses"] == 0


def test_without_spot_prices_every_policy_is_on_demand():
    out = figures(runs(spot_price=None))
    assert out["spot_policy_usd"] == out["always_spot_usd"] == out["ondemand_only_usd"]
    assert out["preemptions"] == 0


def test_same_seed_same_figures_other_seed_other_draws():
    assert figures(runs()) == figures(runs())
    assert figures(runs(), seed=2)["always_spot_usd"] != figures(runs())["always_spot_usd"]
