"""Money as people read it: ``usd(0.00003663)`` is "$0.000037", ``usd(1234.5)`` is "$1,234.50".

Amounts of a cent or more show cents with thousands separators; smaller ones show two significant
digits (a run of a few seconds costs a fraction of a cent, and "$0.00" would hide it, "3.663e-05" too).
Hourly prices keep four significant digits (``usd_price``). Only text for people goes through here:
JSON keeps the unrounded floats.
"""

from __future__ import annotations

import math
from functools import lru_cache

NOISE_USD = 1e-9  # below this an amount is float noise (a sum of parts minus the whole), shown as zero


def usd(value: float | None, sub_cent_digits: int = 2) -> str:
    """"$1,234.50", "$0.37", "$0.000037", "-$2.00"; "-" for a missing (None / NaN) amount."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if abs(value) < NOISE_USD:
        return "$0.00"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if round(amount, 2) >= 0.01:
        return f"{sign}${amount:,.2f}"
    return f"{sign}${_significant(amount, sub_cent_digits)}"


@lru_cache(maxsize=4096)  # a catalog has few distinct prices, and every decision's reason names one
def usd_price(value: float | None, digits: int = 4) -> str:
    """An hourly price: "$0.0416", "$3.06", "$1,234.57"; never in e-notation."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if amount >= 10 ** (digits - 1):
        return f"{sign}${amount:,.0f}"
    return f"{sign}${_significant(amount, digits, group=True)}"


def _significant(amount: float, digits: int, group: bool = False) -> str:
    """``amount`` (> 0) to ``digits`` significant digits in plain decimals, trailing zeros dropped."""
    decimals = max(digits - 1 - math.floor(math.log10(amount)), 0)
    text = f"{amount:,.{decimals}f}" if group else f"{amount:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
