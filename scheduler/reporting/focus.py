"""FOCUS export: the run history as a FinOps Open Cost and Usage Specification (1.2 or 1.3) cost dataset.

One row per finished run and charge period (a run is one charge: its shape's hourly price times its
hours). FOCUS wants every row inside one billing period, so a run that crosses a month boundary is
split there (``charge_period="day"`` splits at every midnight UTC too); its cost, hours, savings and
idle spend are shared out by time, and the parts add up exactly to the run's figures. Every
column the version marks Mandatory is present (``focus_spec``); the Recommended InvoiceId and
ServiceSubcategory and the Conditional ones that apply here are filled too (ResourceId, ResourceName,
ResourceType, SkuId, SkuPriceId, ListUnitPrice, ContractedUnitPrice, ConsumedQuantity, ConsumedUnit,
ChargeFrequency, PricingCategory, Tags); costwise's own columns start with ``x_``. Costs are the prices
the runs ran at, so ListCost = ContractedCost = EffectiveCost = BilledCost; a spot run's PricingCategory
is "Dynamic", every other run's "Standard".

InvoiceId is null on every row: costwise prices runs for showback, it issues no invoice, and FOCUS says
InvoiceId MUST be null for a charge not associated with an invoice. (The FinOps Foundation's validator
gives that rule, InvoiceId-C-004-C, and its opposite, InvoiceId-C-005-C, no condition, so C-005-C fails.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.spot import Market
from .focus_spec import MANDATORY_1_2, FocusVersion

PROVIDER = "costwise"
SERVICE_NAME = "costwise"
SERVICE_CATEGORY = "AI and Machine Learning"  # one of FOCUS's allowed ServiceCategory values
CURRENCY = "USD"

SERVICE_SUBCATEGORY = "Machine Learning"  # its parent category is SERVICE_CATEGORY in FOCUS's table
INVOICE_ID = None  # not invoiced: see the module's docstring
PRICING_CATEGORY = {Market.SPOT: "Dynamic"}  # every other market (on-demand, or not recorded) is "Standard"

MANDATORY = MANDATORY_1_2  # the columns FOCUS 1.2 makes Mandatory (type, nulls allowed)
RECOMMENDED = ("InvoiceId", "ServiceSubcategory")
CONDITIONAL = ("ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice", "ListUnitPrice",
               "PricingCategory", "ResourceId", "ResourceName", "ResourceType", "SkuId", "SkuPriceId", "Tags")
CUSTOM = ("x_RunId", "x_Job", "x_Pipeline", "x_Step", "x_State", "x_Shape", "x_Backend", "x_CacheHit",
          "x_SavedCost", "x_IdleCost", "x_Utilization", "x_CpuUtilization", "x_MemoryPeakBytes",
          "x_GpuUtilization", "x_DurationSeconds")


CHARGE_PERIODS = ("month", "day")
SHARED_BY_TIME = ("cost_usd", "saved_usd", "idle_usd", "duration_s")  # money and hours of a run split in parts


def split_by_period(df: pd.DataFrame, period: str = "month") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut runs that cross a period boundary (UTC months, or days) into parts: returns the runs with
    each crossing run cut to its first part, and the later parts. A part carries its share of the
    run's cost, savings, idle spend and seconds by wall time, the last part the remainder, so the parts
    add up exactly to the run. Only the columns that change are copied (a report has millions of rows)."""
    if period not in CHARGE_PERIODS:
        raise ValueError(f"charge period {period!r} is not one of {', '.join(CHARGE_PERIODS)}")
    unit = "M" if period == "month" else "D"
    end = _naive_us(df["ended_at"])
    start = np.minimum(_naive_us(df["started_at"].fillna(df["ended_at"])), end)
    first = start.astype(f"datetime64[{unit}]")
    parts = ((end - np.timedelta64(1, "us")).astype(f"datetime64[{unit}]") - first).astype(np.int64) + 1
    parts = np.where(end > start, parts, 1)
    where = np.flatnonzero(parts > 1)
    if not len(where):
        return df, df.iloc[:0]
    counts = parts[where]
    rows = np.repeat(where, counts)  # one entry per part, parts of a run together and in time order
    nth = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    part_start = np.maximum(start[rows], (first[rows] + nth).astype("datetime64[us]"))
    part_end = np.minimum(end[rows], (first[rows] + nth + 1).astype("datetime64[us]"))
    share = (part_end - part_start) / (end[rows] - start[rows])
    last = nth == np.repeat(counts, counts) - 1
    values: dict[str, np.ndarray] = {
        "started_at": part_start, "ended_at": part_end,
    }
    for column in SHARED_BY_TIME:
        if column in df:
            whole = df[column].to_numpy(dtype=float)[rows]
            value = whole * share
            before_last = np.bincount(np.repeat(np.arange(len(where)), counts),
                                      weights=np.where(last, 0.0, np.nan_to_num(value)), minlength=len(where))
            value[last] = whole[last] - before_last  # NaN (not measured) stays NaN
            values[column] = value
    head = nth == 0
    firsts = df.copy(deep=False)
    later = df.iloc[rows[~head]].reset_index(drop=True)
    for column, value in values.items():
        if column in ("started_at", "ended_at"):
            value = pd.to_datetime(value).tz_localize("UTC").as_unit("us")
            firsts[column] = firsts[column].copy()
            firsts.iloc[where, firsts.columns.get_loc(column)] = value[head]
            later[column] = value[~head]
        else:
            column_values = df[column].to_numpy(dtype=float).copy()
            column_values[where] = value[head]
            firsts[column] = column_values
            later[column] = value[~head]
    return firsts, later


def _naive_us(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


def _timestamps(ts: pd.Series, ceil: bool = False):
    """UTC timestamps in whole seconds (floored, or ceiled for exclusive ends) as an Arrow array."""
    import pyarrow as pa

    values = _naive_us(ts)
    if ceil:
        values = values + np.timedelta64(999_999, "us")
    return pa.array(values.astype("datetime64[s]"))


def _iso(array):
    """FOCUS date/time format: ISO 8601 in UTC, 'YYYY-MM-DDTHH:MM:SSZ'."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(array, pa.string())  # "YYYY-MM-DD HH:MM:SS": much faster than strftime
    return pc.binary_join_element_wise(pc.replace_substring(text, " ", "T", max_replacements=1), "Z", "")


def _strings(values):
    """A categorical / object column as an Arrow string array (nulls kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values, from_pandas=True)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return pc.cast(array, pa.string()) if len(array) else pa.array([], pa.string())


def to_focus(df: pd.DataFrame, labels: Sequence[str] = (), account_id: str = PROVIDER,
             account_name: str = PROVIDER, charge_period: str = "month",
             version: FocusVersion | str = FocusVersion.V1_2):
    """A FOCUS table (pyarrow) from ``report.load_runs(..., detail=True)``: one row per run and
    charge period (see ``split_by_period``; the later parts of split runs come after all runs)."""
    import pyarrow as pa

    version = FocusVersion(version)
    firsts, later = split_by_period(df, charge_period)
    table = _focus_table(firsts, labels, account_id, account_name, version)
    if len(later):
        table = pa.concat_tables([table, _focus_table(later, labels, account_id, account_name, version)])
    return table


def _focus_table(df: pd.DataFrame, labels: Sequence[str], account_id: str, account_name: str,
                 version: FocusVersion):
    import pyarrow as pa

    v = _values(df)
    const = _constants(len(df))
    columns = _columns(v, const, account_id, account_name)
    if version == FocusVersion.V1_3:
        columns = _with_1_3_providers(columns, const)
    for key in labels:
        column = f"label:{key}"
        if column in df:
            columns[f"x_Label_{_safe(key)}"] = _strings(df[column])
    return pa.table(columns)


def _with_1_3_providers(columns: dict, const) -> dict:
    """FOCUS 1.3's ServiceProviderName and HostProviderName beside the deprecated (still Mandatory)
    ProviderName and PublisherName. costwise shows no host below its shapes, and 1.3 lets the host
    provider equal the service provider when the underlying host is not visible."""
    out = {}
    for name, value in columns.items():
        out[name] = value
        if name == "PublisherName":
            out["ServiceProviderName"] = const(PROVIDER)
            out["HostProviderName"] = const(PROVIDER)
    return out


def _periods(df: pd.DataFrame) -> dict:
    """The charge period (start, end) and the billing period (calendar month) of each row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    end = _timestamps(df["ended_at"], ceil=True)
    start = pc.min_element_wise(_timestamps(df["started_at"].fillna(df["ended_at"])), end)
    months = start.to_numpy(zero_copy_only=False).astype("datetime64[M]")
    # a report spans few months: format each once and point at it (a million ISO strings cost ~0.5 s)
    distinct, month_of_row = np.unique(months, return_inverse=True)
    indices = pa.array(month_of_row.astype(np.int32))
    return {
        "start": _iso(start), "end": _iso(end),
        "month": pa.DictionaryArray.from_arrays(indices, _iso(pa.array(distinct.astype("datetime64[s]")))),
        "next_month": pa.DictionaryArray.from_arrays(indices, _iso(pa.array((distinct + 1).astype("datetime64[s]")))),
    }


def _values(df: pd.DataFrame) -> dict:
    """The per-row arrays the FOCUS columns are made of (numbers as floats, nulls kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def floats(name: str, nan_is_null: bool = True):
        return pa.array(df[name].to_numpy(dtype=float), from_pandas=nan_is_null)

    started = df["started_at"].notna().to_numpy()
    v = {name: floats(name, nan_is_null=False) for name in ("cost_usd", "saved_usd")}
    v.update({name: floats(name) for name in ("price_per_hour", "idle_usd", "util", "cpu_util_avg",
                                              "mem_peak_bytes", "gpu_util_avg", "duration_s")})
    v["hours"] = pa.array(np.where(started, df["duration_s"].fillna(0.0).to_numpy(dtype=float) / 3600.0, 0.0))
    v.update({name: _strings(df[name]) for name in ("job", "shape", "pipeline", "step", "id", "state", "backend")})
    v["step_name"] = pc.binary_join_element_wise(v["pipeline"], v["step"], "/", null_handling="emit_null")
    v["description"] = pc.binary_join_element_wise(
        "run of ", pc.fill_null(v["job"], "(inline)"), " on ", pc.fill_null(v["shape"], "no shape (reused outputs)"), "")
    price_text = pc.cast(pc.round(v["price_per_hour"], 6), pa.string())
    v["sku_price"] = pc.binary_join_element_wise(v["shape"], price_text, "@", null_handling="emit_null")
    v["tags"] = pc.fill_null(_strings(df["labels_json"]), "{}")
    v["cache_hit"] = pa.array(df["cache_hit"].to_numpy(dtype=bool))
    v["pricing_category"] = _pricing_categories(df)
    v.update(_periods(df))
    return v


def _pricing_categories(df: pd.DataFrame):
    """FOCUS's PricingCategory per row from the run's market; a run with none recorded ran on-demand."""
    import pyarrow as pa

    names = ["Standard", *PRICING_CATEGORY.values()]
    codes = np.zeros(len(df), dtype=np.int8)
    if "market" in df:
        market = df["market"].astype(object).to_numpy()
        for i, kind in enumerate(PRICING_CATEGORY, start=1):
            codes[market == kind.value] = i
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))


def _constants(n: int):
    import pyarrow as pa

    def const(value):
        if value is None:
            return pa.nulls(n, pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), pa.array([value], pa.string()))

    return const


def _columns(v: dict, const, account_id: str, account_name: str) -> dict:
    """The FOCUS column map (one line per column, as the spec lists them: longer than 50 lines on purpose)."""
    import pyarrow.compute as pc

    cost, hours, price, shape, run_id = v["cost_usd"], v["hours"], v["price_per_hour"], v["shape"], v["id"]
    return {
        "BilledCost": cost,
        "BillingAccountId": const(account_id),
        "BillingAccountName": const(account_name),
        "BillingCurrency": const(CURRENCY),
        "BillingPeriodEnd": v["next_month"],
        "BillingPeriodStart": v["month"],
        "ChargeCategory": const("Usage"),
        "ChargeClass": const(None),
        "ChargeDescription": v["description"],
        "ChargePeriodEnd": v["end"],
        "ChargePeriodStart": v["start"],
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceId": const(INVOICE_ID),
        "InvoiceIssuerName": const(PROVIDER),
        "ListCost": cost,
        "PricingQuantity": hours,
        "PricingUnit": const("Hours"),
        "ProviderName": const(PROVIDER),
        "PublisherName": const(PROVIDER),
        "ServiceCategory": const(SERVICE_CATEGORY),
        "ServiceName": const(SERVICE_NAME),
        "ServiceSubcategory": const(SERVICE_SUBCATEGORY),
        "ChargeFrequency": const("Usage-Based"),
        "ConsumedQuantity": hours,
        "ConsumedUnit": const("Hours"),
        "ContractedUnitPrice": price,  # null where nothing was priced (reused outputs): FOCUS allows that
        "ListUnitPrice": price,
        "PricingCategory": v["pricing_category"],
        "ResourceId": run_id,
        "ResourceName": pc.coalesce(v["step_name"], v["job"]),
        "ResourceType": const("Run"),
        "SkuId": shape,
        "SkuPriceId": v["sku_price"],
        "Tags": v["tags"],
        "x_RunId": run_id,
        "x_Job": v["job"],
        "x_Pipeline": v["pipeline"],
        "x_Step": v["step"],
        "x_State": v["state"],
        "x_Shape": shape,
        "x_Backend": v["backend"],
        "x_CacheHit": v["cache_hit"],
        "x_SavedCost": v["saved_usd"],
        "x_IdleCost": v["idle_usd"],
        "x_Utilization": v["util"],
        "x_CpuUtilization": v["cpu_util_avg"],
        "x_MemoryPeakBytes": v["mem_peak_bytes"],
        "x_GpuUtilization": v["gpu_util_avg"],
        "x_DurationSeconds": v["duration_s"],
    }


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


def write_focus_csv(frame, path: str | Path) -> None:
    """CSV with a header row; empty fields for nulls; written through pyarrow (fast on millions of rows)."""
    import pyarrow.csv as pacsv

    table = frame
    tmp = Path(str(path) + ".tmp")
    pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="needed"))
    tmp.replace(path)
