"""Install what you use (issue 15.5): the base install is the scheduler, and a command that needs an extra
not installed says so in one line naming it, exit 2.

The real command line runs in a subprocess whose PYTHONPATH starts with a folder of stand-ins for the
optional libraries, each raising ModuleNotFoundError on import as a missing package does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Cli, write

OPTIONAL = ("docker", "kubernetes", "psycopg", "pynvml", "pyarrow", "adbc_driver_sqlite", "adbc_driver_manager",
            "pulumi", "pulumi_docker", "pulumi_kubernetes")
DECLARED = """\
kind: Shape
name: local-small
vcpus: 1
memory_gib: 1
price_per_hour: 0.01
---
kind: Shape
name: dock
backend: docker
vcpus: 1
memory_gib: 1
price_per_hour: 0.02
---
kind: Shape
name: kube
backend: kubernetes
kueue_queue: batch
vcpus: 1
memory_gib: 1
price_per_hour: 0.03
---
kind: Job
name: here
artifact: t.py
shape: local-small
---
kind: Job
name: boxed
artifact: t.py
image: python:3.11-slim
shape: dock
---
kind: Job
name: podded
artifact: t.py
image: python:3.11-slim
shape: kube
"""


def without(folder: Path, *modules: str) -> dict:
    """An environment in which ``modules`` cannot be imported."""
    for name in modules:
        write(folder / name / "__init__.py", f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    return {"PYTHONPATH": str(folder)}


@pytest.fixture
def bare(home, tmp_path):
    """A declared catalog, and the command line with every optional library missing."""
    write(tmp_path / "t.py", "print('ok')\n")
    write(tmp_path / "d.yaml", DECLARED)
    env = without(tmp_path / "missing", *OPTIONAL)
    cli = Cli(home)
    proc = cli("apply", str(tmp_path / "d.yaml"), env=env)
    assert proc.returncode == 0, proc.stderr
    return lambda *args, **kw: cli(*args, env={**env, **kw.pop("env", {})}, **kw)


def one_line(proc, extra: str, what: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.strip().splitlines() == [
        f"error: {what} needs costwise[{extra}]: pip install 'costwise[{extra}]'"], proc.stderr
    assert proc.stdout == ""


def test_the_scheduler_runs_with_no_extra_installed(bare, tmp_path):
    """A local run, its record and the reports that need no Arrow: GPU sampling is off, not an error, and
    the report's runs are read row by row without ADBC."""
    proc = bare("run", "here", "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "SUCCEEDED"
    for fmt in ("csv", "html", "json"):
        proc = bare("report", "--format", fmt, "--out", str(tmp_path / f"r.{fmt}"), "--group-by", "job")
        assert proc.returncode == 0, proc.stderr
    assert "here" in (tmp_path / "r.csv").read_text()


def test_the_docker_backend_names_its_extra(bare):
    one_line(bare("run", "boxed", "--dry-run"), "docker", "the docker backend")
    # run --wait launches it here: one line naming the extra, exit 2; the run is stored, failed at launch saying why
    one_line(bare("run", "boxed", "--wait", "--json"), "docker", "the docker backend")
    run = json.loads(bare("runs", "--job", "boxed", "--json").stdout)[0]
    assert run["state"] == "FAILED"
    assert run["reason"] == "launch failed: the docker backend needs costwise[docker]: pip install 'costwise[docker]'"


def test_the_kubernetes_backend_and_kueue_export_name_their_extra(bare, tmp_path):
    one_line(bare("run", "podded", "--dry-run"), "kubernetes", "the kubernetes backend")
    kubeconfig = write(tmp_path / "kubeconfig", "apiVersion: v1\nkind: Config\n")
    one_line(bare("kueue", "export", env={"KUBECONFIG": str(kubeconfig)}),
             "kubernetes", "the namespace from the kubeconfig (else --namespace)")
    for args, env in [(("--namespace", "ml"), {"KUBECONFIG": str(kubeconfig)}),
                      ((), {"KUBECONFIG": str(tmp_path / "none")})]:  # no kubeconfig: the default namespace
        proc = bare("kueue", "export", *args, env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"namespace: {args[1] if args else 'default'}" in proc.stdout


def test_a_postgresql_catalog_names_its_extra(bare):
    one_line(bare("--db", "postgresql+psycopg://costwise:pw@127.0.0.1:1/x", "runs"),
             "postgres", "a PostgreSQL catalog (--db postgresql+psycopg://...)")


@pytest.mark.parametrize("fmt", ["parquet", "focus"])
def test_arrow_reports_name_their_extra(bare, tmp_path, fmt):
    one_line(bare("report", "--format", fmt, "--out", str(tmp_path / "r.out")), "fast-reports", f"--format {fmt}")
    assert not (tmp_path / "r.out").exists()


def test_the_pulumi_provider_names_its_extra(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import provider"], capture_output=True, text=True, cwd=ROOT,
                          env={**without(tmp_path / "missing", "pulumi"), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "scheduler.core.extras.MissingExtra: the costwise Pulumi provider needs costwise[pulumi]: "
        "pip install 'costwise[pulumi]'")
