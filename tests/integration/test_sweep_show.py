"""`costwise show` of a sweep step lists its trials (index, params, objective, state, cost), the objective
and the budget stop, the same from the catalog and from a daemon's API."""

from __future__ import annotations

import json

from scheduler.core.money import usd

from tests.conftest import costwise_in_process as costwise
from tests.integration.test_sweeps import declare, root, run  # noqa: F401 (root is a fixture)


def sweep_part(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("sweep: "))
    end = next(i for i, line in enumerate(lines) if line.startswith("artifacts: "))
    return lines[start:end]


def test_show_of_a_budget_stopped_sweep_lists_its_trials_and_the_stop(app, root, home, cli, daemons,  # noqa: F811
                                                                      monkeypatch):
    declare(app, root, {"trials": 6, "parallel": 2, "budget_usd": 0.01}, shape="pricey")
    tune = run(app)["by_step"]["tune"]
    trials = tune["trials"]
    assert len(trials) == 2 and tune["sweep"]["stopped"]
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = costwise(home, "show", tune["id"])
    assert code == 0, err
    part = sweep_part(out)
    assert part[0].startswith("sweep: minimize metrics.json#regression.mse · 2 of 6 trials started, 2 succeeded · "
                              f"best {tune['best_trial']} = {tune['sweep']['best_objective']:g}"), part
    for index, trial in enumerate(trials, 1):
        [cells] = [[c.strip() for c in line.split("│")[1:-1]] for line in part if f"│ {trial['id']} │" in line]
        best = " *" if trial["id"] == tune["best_trial"] else ""
        assert cells[0] == f"{index}{best}" and cells[1] == trial["id"] and cells[3:5] == [f"{trial['objective']:g}", "SUCCEEDED"]
        assert f"lr={trial['trial']['lr']:g}" in cells[2] and f"depth={trial['trial']['depth']}" in cells[2]
        assert cells[5] == usd(trial["cost_usd"])
    caption = part[-1]
    assert "of budget $0.01 · stopped: " in caption and "would pass budget_usd $0.01" in caption, part
    # a run that is no sweep step shows no sweep table
    prepare = run(app, force_all=True)["by_step"]["prepare"]
    assert "sweep: " not in costwise(home, "show", prepare["id"])[1]
    # the thin path (a daemon up) draws the same table from the pipeline run's record
    daemons()
    thin = cli("show", tune["id"], env={"COLUMNS": "200"})
    thick = cli("show", tune["id"], env={"COLUMNS": "200", "COSTWISE_THIN": "0"})
    assert thin.returncode == 0 and thick.returncode == 0, thin.stderr + thick.stderr
    assert sweep_part(thin.stdout) == sweep_part(thick.stdout) == part
    assert json.loads(cli("show", tune["id"], "--json").stdout)["sweep"]["stopped"] == tune["sweep"]["stopped"]
