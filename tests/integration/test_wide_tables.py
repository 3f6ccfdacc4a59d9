"""--wide on `pipeline runs`, and on `runs` / `shapes` when a daemon answers (the thin path): every
column in full; without it the table fits the terminal and keeps run ids and states whole."""

from __future__ import annotations

import json

from tests.conftest import costwise_in_process as costwise, write

DOCS = """
kind: Shape
name: small-cpu-shape-with-a-long-name
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
capacity: 4
---
kind: Job
name: say-hello-with-a-rather-long-name
artifact: hello.py
---
kind: Pipeline
name: greeting-pipeline-with-a-long-name
steps:
  - {name: hello, job: say-hello-with-a-rather-long-name}
"""


def declare(home, tmp_path):
    write(tmp_path / "hello.py", "print('hello')\n")
    write(tmp_path / "docs.yaml", DOCS)
    code, _, err = costwise(home, "apply", str(tmp_path / "docs.yaml"))
    assert code == 0, err


def widths(text: str) -> int:
    return max(map(len, text.splitlines()))


def test_pipeline_runs_wide(home, tmp_path, monkeypatch):
    declare(home, tmp_path)
    code, out, err = costwise(home, "pipeline", "run", "greeting-pipeline-with-a-long-name", "--wait", "--json")
    assert code == 0, err
    prun = json.loads(out)
    monkeypatch.setenv("COLUMNS", "50")
    code, narrow, _ = costwise(home, "pipeline", "runs")
    assert code == 0 and widths(narrow) <= 50 and f" {prun['id']} " in narrow and " SUCCEEDED " in narrow, narrow
    assert "started" not in narrow  # an optional column went first
    code, wide, _ = costwise(home, "pipeline", "runs", "--wide")
    assert code == 0 and widths(wide) > 50 and "started" in wide and "greeting-pipeline-with-a-long-name" in wide


def test_runs_and_shapes_wide_on_the_thin_path(home, tmp_path, cli, daemons):
    declare(home, tmp_path)
    daemons()
    run = cli.json("run", "say-hello-with-a-rather-long-name", "--wait")
    narrow_env = {"COLUMNS": "60"}
    for args, key, optional in ((["runs"], run["id"], "mem peak"), (["shapes"], "small-cpu-shape-with-a-long-name", "capacity")):
        for env in (narrow_env, {**narrow_env, "COSTWISE_THIN": "0"}):  # the daemon's answer, then the catalog's
            narrow, wide = cli(*args, env=env), cli(*args, "--wide", env=env)
            assert narrow.returncode == 0 and wide.returncode == 0, narrow.stderr + wide.stderr
            assert widths(narrow.stdout) <= 60 and f" {key} " in narrow.stdout, narrow.stdout
            assert widths(wide.stdout) > 60 and optional in wide.stdout and f" {key} " in wide.stdout, wide.stdout
