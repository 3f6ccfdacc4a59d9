"""`costwise demo`, the README's first command, end to end."""

import json
import re
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
    # the money story: shapes from the shipped public catalog, the estimate first, dollars at the end
    told = proc.stderr
    assert "t3.medium" in told and "m5.xlarge" in told and told.index("estimate") < told.index("1. full run")
    month = out["month"]
    assert month["nights"] == 30 and set(month["states"]) == {"SUCCEEDED"}
    assert month["spend_usd"] > 0.05 and month["saved_usd"] > month["spend_usd"]  # most nights reuse everything
    assert month["sized_shape"] == "m5.xlarge" and month["saved_vs_sized_usd"] > 0.01
    assert month["executed"] == 4 + 4 * 3 + 2 and month["reused"] == 30 * 4 - month["executed"]
    # the reused prepare's cost is shown with its significant digits, not rounded to zero (it costs under a
    # millionth of a dollar when prepare takes under 0.09 s)
    assert re.search(r"^spend \$\S+, saved by reuse \$0\.0*[1-9]", told, re.M)
    assert re.search(r"the month: spend \$0\.\d\d, saved by reuse \$\d", told)
    assert Path(month["report"]).read_text().count("cache hit ratio") >= 1
    # the registry kept a model version per successful training
    versions = sorted(p.name for p in (cli.home / "models" / "abalone").iterdir())
    assert versions == ["v1", "v2"]
    # run again in the same catalog: the hyper-parameter change is a new one, so the story holds
    again = cli("demo", "--json", timeout=120)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["pipeline_runs"][1]
    assert [s["state"] for s in second["steps"]][:2] == ["CACHED", "SUCCEEDED"]
