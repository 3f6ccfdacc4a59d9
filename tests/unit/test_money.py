"""Money for people: cents and thousands separators above a cent, significant digits below, never e-notation."""

from __future__ import annotations

import math

import pytest

from scheduler.core.money import usd, usd_price


@pytest.mark.parametrize("value, text", [
    (3.663e-05, "$0.000037"),
    (0.004, "$0.004"),
    (0.0045, "$0.0045"),
    (0.00999, "$0.01"),  # rounds up to a cent: shown as cents
    (0.01, "$0.01"),
    (0.37, "$0.37"),
    (0.999, "$1.00"),
    (1234.5, "$1,234.50"),
    (1234567.891, "$1,234,567.89"),
    (0.0, "$0.00"),
    (1e-15, "$0.00"),
    (-2.0, "-$2.00"),
    (-0.00012, "-$0.00012"),
    (None, "-"),
    (math.nan, "-"),
])
def test_usd(value, text):
    assert usd(value) == text


@pytest.mark.parametrize("value, text", [
    (0.0416, "$0.0416"), (3.06, "$3.06"), (0.1, "$0.1"), (12.2448, "$12.24"), (1234.567, "$1,235"),
    (2.5e-05, "$0.000025"), (0.0, "$0"), (None, "-"),
])
def test_usd_price(value, text):
    assert usd_price(value) == text


def test_no_amount_is_ever_in_e_notation():
    for exponent in range(-9, 10):
        for mantissa in (1.0, 3.663, 9.999):
            for text in (usd(mantissa * 10.0**exponent), usd_price(mantissa * 10.0**exponent)):
                assert "e" not in text.lower(), text
