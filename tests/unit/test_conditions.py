"""A pipeline `when` compares like with like: numbers (int and float alike) with numbers, strings
with strings (ordered as text), booleans with booleans (== / != only); anything else is an error
naming the value and both types, never a silent True."""

import pytest

from scheduler.core.errors import ConditionError, SpecError
from scheduler.core.pipelines import Condition, evaluate_condition


def check(value, op, than, params=None):
    condition = Condition(value="m/m.json#x", op=op, than=than)
    return evaluate_condition(condition, {"x": value}, params or {})[0]


@pytest.mark.parametrize("value,op,than,expected", [
    (5, "<", 5.5, True), (6, "<", 5.5, False), (5.0, "==", 5, True), (3, ">=", 4, False), (0.1, "!=", 0.2, True),
    ("b", ">", "a", True), ("2026-01-02", "<", "2026-01-10", True), ("abc", "==", "abc", True),
    (True, "==", True, True), (False, "!=", True, True),
])
def test_like_with_like_compares(value, op, than, expected):
    assert check(value, op, than) is expected


def test_a_numeric_threshold_given_as_text_is_read_as_a_number():
    assert check(5.0, "<=", "${params.t}", {"t": "7.5"}) is True
    assert check(9.0, "<=", "${params.t}", {"t": "7.5"}) is False


@pytest.mark.parametrize("value,op,than,kinds", [
    (5.0, "==", "abc", "(number) == 'abc' (string)"),
    (5.0, "!=", "abc", "(number) != 'abc' (string)"),
    (None, ">", 0.5, "(null) > 0.5 (number)"),
    (None, "==", 0.5, "(null) == 0.5 (number)"),
    (True, "==", 1, "(boolean) == 1 (number)"),
    (1, "<", True, "(number) < True (boolean)"),
    ("abc", "<", 3, "(string) < 3 (number)"),
    (True, "<", False, "(boolean) < False (boolean)"),
    ([1, 2], "==", 1, "(list) == 1 (number)"),
])
def test_incomparable_values_are_an_error_naming_value_and_types(value, op, than, kinds):
    with pytest.raises(ConditionError) as caught:
        check(value, op, than)
    assert kinds in str(caught.value) and repr(value) in str(caught.value)
    assert isinstance(caught.value, SpecError) and caught.value.field == "when"
