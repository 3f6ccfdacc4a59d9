"""Shared fixtures. Real services (PostgreSQL, Docker, Prometheus) are the ones `.ci/run` starts;
without them a test skips loudly when run by hand, and fails under CI (CI=true)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scheduler.runtime.context import AppContext
from scheduler.store.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PG_URL = os.environ.get("COSTWISE_TEST_PG", "postgresql+psycopg://costwise:costwise@127.0.0.1/costwise_test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_service(name: str, why: str) -> None:
    """Skip loudly by hand; fail in CI, where `.ci/run` must have started the service."""
    message = f"{name} is not available ({why}); `bash .ci/setup.sh --services` starts it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip("SKIPPED LOUDLY: " + message)


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home) -> Settings:
    return Settings(home=home, db_url=f"sqlite:///{home / 'catalog.db'}")


@pytest.fixture
def app(settings):
    ctx = AppContext(settings)
    yield ctx
    ctx.close()


@pytest.fixture
def pg_url():
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL"
        need_service("PostgreSQL", f"{PG_URL}: {type(exc).__name__}")
    return PG_URL


@pytest.fixture
def fresh_pg(pg_url):
    """A PostgreSQL catalog emptied for this test."""
    import sqlalchemy

    from scheduler.store import schema as db

    engine = sqlalchemy.create_engine(pg_url)
    db.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("drop table if exists apscheduler_jobs")
    engine.dispose()
    return pg_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path) -> str:
    """One catalog URL per database the store supports: a test taking it runs on SQLite and on an
    emptied PostgreSQL (skipped loudly, or failed in CI, when PostgreSQL is absent)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("fresh_pg")


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    if mode:
        path.chmod(mode)
    return path


class Cli:
    """Runs the real `costwise` command line in a subprocess against one home."""

    def __init__(self, home: Path, db_url: str | None = None):
        self.home = home
        self.db_url = db_url

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120, env: dict | None = None):
        full_env = {**os.environ, "COSTWISE_HOME": str(self.home), **(env or {})}
        full_env.pop("COSTWISE_DB", None)
        if self.db_url:
            full_env["COSTWISE_DB"] = self.db_url
        return subprocess.run(
            [sys.executable, "-m", "scheduler.cli", *args],
            capture_output=True, text=True, input=input, timeout=timeout, env=full_env,
        )

    def json(self, *args: str, **kw):
        proc = self(*args, "--json", **kw)
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def cli(home) -> Cli:
    return Cli(home)


def costwise_in_process(home: Path, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command line run in this process (fast: no interpreter start)."""
    import contextlib
    import io

    from scheduler.cli.main import run_cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(["--home", str(home), *args])
    return code, out.getvalue(), err.getvalue()


def catalog_rows(home: Path):
    """Every catalog entry of the SQLite catalog under home, with its version and spec (to see that nothing changed)."""
    import sqlalchemy

    from scheduler.store import schema as db

    engine = sqlalchemy.create_engine(f"sqlite:///{home / 'catalog.db'}")
    try:
        with engine.connect() as conn:
            return sorted((r.kind, r.name, r.version, json.dumps(r.spec, sort_keys=True))
                          for r in conn.execute(sqlalchemy.select(db.catalog)))
    finally:
        engine.dispose()


@pytest.fixture
def daemons(home):
    """Start real daemons on this test's home (keyword arguments go to DaemonProcess); all stopped after."""
    from tests.daemon_harness import DaemonProcess

    started = []

    def start(**kw):
        d = DaemonProcess(home, **kw)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()
