"""`costwise demo`, the README's first command, end to end."""

import json
import time
from pathlib import Path


def test_demo_runs_the_pipeline_twice_and_reuses_prepare(cli):
    started = time.monotonic()
    proc = cli("demo", "--json", timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    first, second = out["pipeline_runs"]
    assert first["state"] == second["state"] == "SUCCEEDED"
    assert [s["state"] for s in first["steps"]] == ["SUCCEEDED"] * 4 + ["SKIPPED"]
    assert [s["state"] for s in second["steps"]] == ["CACHED", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "SKIPPED"]
    assert second["saved_usd"] == first["steps"][0]["cost_usd"] > 0
    assert out["runaway"]["state"] == "TIMED_OUT"
    assert Path(out["report"]).read_text().count("<svg") >= 3
    assert elapsed < 60
    # the registry kept a model version per successful training
    versions = sorted(p.name for p in (cli.home / "models" / "abalone").iterdir())
    assert versions == ["v1", "v2"]
    # run again in the same catalog: the hyper-parameter change is a new one, so the story holds
    again = cli("demo", "--json", timeout=120)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["pipeline_runs"][1]
    assert [s["state"] for s in second["steps"]][:2] == ["CACHED", "SUCCEEDED"]
