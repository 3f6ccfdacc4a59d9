"""Sweep steps (pure): the sweep document, trial generation, the budget rule and the best trial.

A sweep step runs one job as trials. `grid` parameters are enumerated as a cross product; `choice`,
`uniform`, `loguniform` and `randint` parameters are drawn from ``random.Random(seed)``, so the same
document always yields the same trials. Parameters are taken in name order (not document order),
so the trials do not depend on how a catalog database orders JSON keys.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from typing import Annotated, Any, Iterable, Literal, Sequence

from pydantic import Field, field_validator, model_validator

from .bounds import LIST_MAX, MONEY_MAX_USD, SWEEP_PARALLEL_MAX, SWEEP_TRIALS_MAX, SWEEP_VALUES_MAX
from .money import usd
from .specs import Name, Scalar, Spec

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint")
TRIAL_REF = re.compile(r"\$\{trial\.([A-Za-z_][A-Za-z0-9_]*)\}")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Values = Annotated[list[Scalar], Field(max_length=SWEEP_VALUES_MAX)]


class Distribution(Spec):
    """Exactly one of: grid / choice (non-empty lists of values), uniform / loguniform ([low, high]
    floats, low < high, loguniform bounds > 0), randint ([low, high] integers, both included)."""

    grid: Values | None = None
    choice: Values | None = None
    uniform: list[float] | None = None  # [low, high]: the length is checked below
    loguniform: list[float] | None = None
    randint: list[int] | None = None

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"a distribution is a mapping like {{choice: [1, 2]}}, not {data!r}")
        unknown = [k for k in data if k not in DISTRIBUTIONS]
        if unknown:
            raise ValueError(f"unknown distribution {unknown[0]!r} (known: {', '.join(DISTRIBUTIONS)})")
        given = {k: v for k, v in data.items() if v is not None}  # a stored spec lists the others as null
        if len(given) != 1:
            raise ValueError(f"give exactly one distribution ({', '.join(DISTRIBUTIONS)}), got {len(given)}")
        return given

    @model_validator(mode="after")
    def _bounds(self) -> "Distribution":
        name, values = self.kind, self.values
        if name in ("grid", "choice"):
            if not values:
                raise ValueError(f"{name} needs at least one value")
            return self
        if len(values) != 2:
            raise ValueError(f"{name} takes [low, high], got {len(values)} values")
        low, high = values
        if name == "loguniform" and not (low > 0 and high > 0):
            raise ValueError(f"loguniform bounds must be > 0, got [{low}, {high}]")
        if name == "randint" and low > high:
            raise ValueError(f"randint needs low <= high, got [{low}, {high}]")
        if name in ("uniform", "loguniform") and not low < high:
            raise ValueError(f"{name} needs low < high, got [{low}, {high}]")
        if name in ("uniform", "loguniform") and not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name} bounds must be finite, got [{low}, {high}]")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in DISTRIBUTIONS if getattr(self, name) is not None)

    @property
    def values(self) -> list[Any]:
        return list(getattr(self, self.kind))

    def sample(self, rng: random.Random) -> Any:
        kind, values = self.kind, self.values
        if kind == "choice":
            return rng.choice(values)
        if kind == "uniform":
            return rng.uniform(values[0], values[1])
        if kind == "loguniform":
            return math.exp(rng.uniform(math.log(values[0]), math.log(values[1])))
        if kind == "randint":
            return rng.randint(values[0], values[1])
        raise ValueError(f"{kind} values are enumerated, not sampled")


class Objective(Spec):
    value: str  # "metrics.json#regression.mse": a file among the step's outputs, then a JSON path
    goal: Literal["minimize", "maximize"] = "minimize"

    @field_validator("value")
    @classmethod
    def _reference(cls, value: str) -> str:
        output, sep, path = value.partition("#")
        if not sep or not output or not path.strip("."):
            raise ValueError(f"{value!r} is not 'output.json#json.path'")
        if "/" in output:
            raise ValueError(f"{value!r}: the file is one of this step's own outputs, a plain file name")
        return value

    @property
    def output(self) -> str:
        return self.value.partition("#")[0]

    @property
    def path(self) -> list[str]:
        return [p for p in self.value.partition("#")[2].split(".") if p]


class SweepSpec(Spec):
    job: Name  # a declared Job; checked against the catalog at apply time
    parameters: Annotated[dict[str, Distribution], Field(max_length=LIST_MAX)] = {}
    trials: int | None = Field(None, ge=1, le=SWEEP_TRIALS_MAX)
    parallel: int = Field(1, ge=1, le=SWEEP_PARALLEL_MAX)
    seed: int = 0
    objective: Objective
    budget_usd: float | None = Field(None, ge=0, le=MONEY_MAX_USD)

    @field_validator("parameters")
    @classmethod
    def _names(cls, value: dict[str, Distribution]) -> dict[str, Distribution]:
        for name in value:
            if not PARAM_NAME.match(name):
                raise ValueError(f"parameter name {name!r} is not an identifier (letters, digits, _)")
        return value

    @model_validator(mode="after")
    def _grid_within_cap(self) -> "SweepSpec":
        if self.grid_size > SWEEP_TRIALS_MAX:
            sizes = " x ".join(f"{n} {len(d.values)}" for n, d in sorted(self.parameters.items()) if d.kind == "grid")
            raise ValueError(
                f"the grid has {self.grid_size} points ({sizes}), more than the {SWEEP_TRIALS_MAX}-trial cap"
            )
        return self

    @property
    def grid_size(self) -> int:
        """The number of grid points: the product of the grid lists' lengths (never enumerated)."""
        return math.prod(len(d.values) for d in self.parameters.values() if d.kind == "grid")

    @property
    def trial_count(self) -> int:
        return self.trials if self.trials is not None else max(1, self.grid_size)


# -- trials ----------------------------------------------------------------------------------------
def generate_trials(sweep: SweepSpec) -> list[dict[str, Any]]:
    """Every trial's parameters, in trial order. The grid's cross product is walked in order (and
    cycled when there are more trials than grid points); the other parameters are drawn from
    ``random.Random(seed)``, trial by trial, parameter by parameter in name order."""
    names = sorted(sweep.parameters)
    grid_names = [n for n in names if sweep.parameters[n].kind == "grid"]
    drawn_names = [n for n in names if sweep.parameters[n].kind != "grid"]
    grid = [sweep.parameters[n].values for n in grid_names]
    rng = random.Random(sweep.seed)
    trials = []
    for index in range(sweep.trial_count):
        params = dict(zip(grid_names, grid_point(grid, index % sweep.grid_size)))
        for name in drawn_names:
            params[name] = sweep.parameters[name].sample(rng)
        trials.append({name: params[name] for name in names})
    return trials


def grid_point(grid: Sequence[Sequence[Any]], index: int) -> tuple[Any, ...]:
    """The ``index``-th point of the cross product of ``grid``, in ``itertools.product`` order
    (the last list varies fastest), without building the product."""
    point = []
    for values in reversed(grid):
        index, position = divmod(index, len(values))
        point.append(values[position])
    return tuple(reversed(point))


def trial_refs(texts: Iterable[str]) -> set[str]:
    return {ref for text in texts for ref in TRIAL_REF.findall(text)}


def substitute_trial(text: str, params: dict[str, Any]) -> str:
    return TRIAL_REF.sub(lambda m: _render(params[m.group(1)]), text)


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- budget ----------------------------------------------------------------------------------------
def expected_trial_cost(finished_costs: Sequence[float]) -> float:
    """The expected cost of one more trial: the median cost of the finished ones (0 before any)."""
    return float(statistics.median(finished_costs)) if finished_costs else 0.0


def budget_allows(
    budget_usd: float | None, started: int, parallel: int, finished_costs: Sequence[float], running: int = 0
) -> tuple[bool, str]:
    """Whether the next trial may start, and why not.

    The first ``parallel`` trials always start. After that, the money spent (finished trials'
    costs, plus each running trial at the expected cost: money already committed) plus the expected
    cost of one more trial must not pass the budget."""
    if budget_usd is None or started < parallel:
        return True, ""
    expected = expected_trial_cost(finished_costs)
    spent = float(sum(finished_costs)) + running * expected
    if spent + expected > budget_usd:
        return False, (
            f"budget: spent {usd(spent)} + expected {usd(expected)} for one more trial would pass "
            f"budget_usd {usd(budget_usd)}"
        )
    return True, ""


# -- the best trial --------------------------------------------------------------------------------
def read_objective(document: Any, path: Sequence[str]) -> float:
    """The number at ``path`` in a JSON document; ValueError saying what is wrong otherwise."""
    value = document
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise ValueError(f"no {part!r} in the output")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"the objective {value!r} is not a finite number")
    return float(value)


def best_trial(trials: Sequence[dict[str, Any]], goal: str) -> dict[str, Any] | None:
    """The best finished trial: among those with state SUCCEEDED and a numeric objective, the
    lowest (minimize) or highest (maximize) objective; ties go to the earliest trial (list order).
    Each trial is a mapping with at least ``state`` and ``objective``. None when none qualifies."""
    best = None
    for trial in trials:
        value = trial.get("objective")
        if trial.get("state") != "SUCCEEDED" or value is None:
            continue
        if best is None or (value < best["objective"] if goal == "minimize" else value > best["objective"]):
            best = trial
    return best
