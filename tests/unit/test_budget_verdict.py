"""A budget's verdict is a type: hold or refuse plus the reason, never a string to sniff."""

from scheduler.core.budgets import BudgetAction, BudgetSpec, check, verdict


def budget(action="hold"):
    return BudgetSpec(name="team", limit_usd=10.0, action=action, period="week")


def test_within_the_limit_there_is_no_verdict():
    assert check(budget(), spent_usd=4.0, expected_usd=6.0) is None


def test_over_the_limit_the_verdict_says_what_and_why():
    held = check(budget("hold"), spent_usd=8.0, expected_usd=3.0)
    assert held.action is BudgetAction.HOLD and not held.refused
    assert held.reason == "held by budget 'team': $8.00 spent this week + $3.00 expected > $10.00"
    refused = check(budget("refuse"), spent_usd=8.0, expected_usd=3.0)
    assert refused.refused and refused.reason.startswith("refused by budget 'team'")


def test_the_old_string_form_is_the_reason():
    assert verdict(budget("refuse"), 8.0, 3.0) == check(budget("refuse"), 8.0, 3.0).reason
    assert verdict(budget(), 0.0, 1.0) is None
