"""What people expect of a CLI (issue 15.4): shell completion, tables that never cut run ids or
states, listings of what is declared, and `apply --diff`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import costwise_in_process, write


def test_show_completion_prints_a_bash_script(cli):
    proc = cli("--show-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "complete -o default -F _costwise_completion costwise" in proc.stdout
    assert "_COSTWISE_COMPLETE=complete_bash" in proc.stdout


def test_completion_completes_command_names_and_options(home):
    """The script's protocol, as bash drives it: the words so far in, the candidates out."""
    env = {**os.environ, "COSTWISE_HOME": str(home), "_COSTWISE_COMPLETE": "complete_bash"}
    code = "import sys; sys.argv[0] = 'costwise'; from scheduler.cli.main import main; main()"
    words = subprocess.run([sys.executable, "-c", code], env={**env, "COMP_WORDS": "costwise sh", "COMP_CWORD": "1"},
                           capture_output=True, text=True, timeout=60)
    assert words.stdout.split() == ["shapes", "show"], words.stderr
    options = subprocess.run([sys.executable, "-c", code],
                             env={**env, "COMP_WORDS": "costwise runs --st", "COMP_CWORD": "2"},
                             capture_output=True, text=True, timeout=60)
    assert options.stdout.split() == ["--state"], options.stderr


SHAPES = """
kind: Shape
name: small-cpu-shape-with-a-long-name
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
---
kind: Shape
name: gpu
vcpus: 8
memory_gib: 32
gpus: 1
gpu_type: A10
gpu_memory_gib: 24
price_per_hour: 1.10
"""


@pytest.fixture
def declared(home, tmp_path):
    write(tmp_path / "shapes.yaml", SHAPES)
    write(tmp_path / "train.py", "print('ok')\n")
    write(tmp_path / "job.yaml", "kind: Job\nname: train-the-model-with-a-long-name\nartifact: train.py\n"
                                 "requirements: {cpus: 1, memory_gib: 1}\n")
    code, _, err = costwise_in_process(home, "apply", str(tmp_path / "shapes.yaml"), str(tmp_path / "job.yaml"))
    assert code == 0, err
    return tmp_path


def test_runs_and_shapes_at_60_columns_keep_run_ids_and_states_whole(home, declared, monkeypatch):
    code, out, err = costwise_in_process(home, "run", "train-the-model-with-a-long-name", "--wait", "--json")
    assert code == 0, err
    run = json.loads(out)
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = costwise_in_process(home, "runs")
    assert code == 0 and all(len(line) <= 60 for line in out.splitlines()), out
    assert f" {run['id']} " in out and " SUCCEEDED " in out, out
    code, out, _ = costwise_in_process(home, "shapes")
    assert code == 0 and all(len(line) <= 60 for line in out.splitlines())
    assert " small-cpu-shape-with-a-long-name " in out, out  # the name column is the key: never cut
    code, wide, _ = costwise_in_process(home, "shapes", "--wide")
    assert code == 0 and max(map(len, wide.splitlines())) > 60
    assert "gpu type" in wide and "capacity" in wide and " A10 " in wide


DECLARED = """
kind: Job
name: nightly
artifact: train.py
requirements: {cpus: 2, memory_gib: 3}
schedule: {cron: '0 3 * * *'}
spot: allowed
labels: {team: ml}
---
kind: Pipeline
name: retrain
steps:
  - {name: prep, job: train-the-model-with-a-long-name, outputs: [a.json]}
  - {name: fit, job: nightly, inputs: {a.json: prep/a.json}}
schedule: {interval: 1h}
---
kind: Budget
name: ml-daily
labels: {team: ml}
period: day
limit_usd: 5
"""


def test_jobs_pipelines_and_budgets_list_what_is_declared(home, declared):
    write(declared / "more.yaml", DECLARED)
    code, _, err = costwise_in_process(home, "apply", str(declared / "more.yaml"))
    assert code == 0, err
    code, out, err = costwise_in_process(home, "run", "nightly", "--wait", "--json")
    assert code == 0, err
    cost = json.loads(out)["cost_usd"]

    code, out, _ = costwise_in_process(home, "jobs", "--json")
    jobs = {j["name"]: j for j in json.loads(out)}
    assert set(jobs) == {"nightly", "train-the-model-with-a-long-name"}
    assert jobs["nightly"]["requirements"]["cpus"] == 2 and jobs["nightly"]["schedule"]["cron"] == "0 3 * * *"
    assert jobs["nightly"]["spot"] == "allowed" and jobs["nightly"]["labels"] == {"team": "ml"}
    code, out, _ = costwise_in_process(home, "jobs")
    assert code == 0 and "nightly" in out and "cpus=2 memory=3GiB" in out and "cron 0 3 * * *" in out

    code, out, _ = costwise_in_process(home, "pipelines", "--json")
    (pipeline,) = json.loads(out)
    assert [s["name"] for s in pipeline["steps"]] == ["prep", "fit"] and pipeline["steps"][1]["after"] == ["prep"]
    assert pipeline["schedule"]["interval"] == 3600
    code, out, _ = costwise_in_process(home, "pipelines")
    assert "prep → fit" in out and "every 3600s" in out

    code, out, _ = costwise_in_process(home, "budgets", "--json")
    (budget,) = json.loads(out)
    assert budget["labels"] == {"team": "ml"} and budget["period"] == "day" and budget["limit_usd"] == 5
    assert budget["spent_usd"] == pytest.approx(cost) and cost > 0  # the nightly run is labeled team=ml
    code, out, _ = costwise_in_process(home, "budgets")
    assert code == 0 and "ml-daily" in out and "team=ml" in out


def test_runs_wide_shows_the_reason_in_full(home, declared, monkeypatch):
    write(declared / "fail.py", "import sys\nsys.exit(3)\n")
    write(declared / "fail.yaml", "kind: Job\nname: fails\nartifact: fail.py\nrequirements: {cpus: 1, memory_gib: 1}\n")
    assert costwise_in_process(home, "apply", str(declared / "fail.yaml"))[0] == 0
    code, out, _ = costwise_in_process(home, "run", "fails", "--wait", "--json")
    run = json.loads(out)
    assert code == 1 and run["reason"]
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = costwise_in_process(home, "runs", "--wide")
    assert code == 0 and f" {run['id']} " in out and " FAILED " in out and f" {run['reason']} " in out
    assert "mem peak" in out  # nothing dropped, however narrow the terminal
