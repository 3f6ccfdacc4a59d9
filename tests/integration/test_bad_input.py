"""Bad input through the real command line (issue 10): hostile files, an unwritable home, a full disk,
a bad catalog URL and malformed options are each one line on stderr, exit 2, and nothing stored.

Most cases run `scheduler.cli.main.run_cli` in this process (an exception escaping it fails the test, as
a traceback would); the ones about the machine (mounts, the console script) run a subprocess."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import Cli, catalog_rows, costwise_in_process as costwise, write

SHAPE = "kind: Shape\nname: small\nvcpus: 2\nmemory_gib: 4\nprice_per_hour: 0.1\n"
JOB = "kind: Job\nname: train\nartifact: train.py\n"
EXTRA = "kind: Shape\nname: extra\nvcpus: 1\nmemory_gib: 1\nprice_per_hour: 0.01\n---\n"


@pytest.fixture
def declared(home, tmp_path):
    write(tmp_path / "train.py", "print('ok')\n")
    write(tmp_path / "base.yaml", SHAPE + "---\n" + JOB)
    code, _, err = costwise(home, "apply", str(tmp_path / "base.yaml"))
    assert code == 0, err
    return tmp_path


def one_line_refusal(code: int, out: str, err: str) -> str:
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and out == ""
    return lines[0]


def laughs() -> str:
    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    return "kind: Pipeline\nname: p\nsteps:\n  - name: a\n    fail: x\n    when:\n      value: a/m.json#x\n      op: '<'\n" \
           "      than: {" + ", ".join(rows) + "}\n"


GRID = ("kind: Pipeline\nname: big\nsteps:\n  - name: tune\n    outputs: [m.json]\n    sweep:\n      job: train\n"
        "      objective: {value: 'm.json#mse'}\n      parameters: {a: {grid: %s}, b: {grid: %s}, c: {grid: %s}}\n"
        % ((list(range(1000)),) * 3))

HOSTILE_TEXT = {
    "not utf-8": (b"kind: Job\nname: \xff\xfe\n", "line 8 is not UTF-8 text (byte 0xff at offset 88)"),
    "deep flow": (("a: " + "[" * 10_000 + "]" * 10_000).encode(), "is not valid YAML/JSON"),
    "deep maps": (("a: " + "{b: " * 10_000 + "1" + "}" * 10_000).encode(), "nested deeper than 32 levels"),
    "billion laughs": (laughs().encode(), "aliases counted as what they repeat"),
    "kind is a list": (b"kind: [Job]\nname: x\n", "kind=['Job'] is not one of"),
    "unknown zone": ((JOB + "schedule: {cron: '0 3 * * *', timezone: Mars/Olympus}\n").encode(),
                     "schedule.timezone='Mars/Olympus' is invalid: 'Mars/Olympus' is not an IANA time zone"),
    "nan interval": ((JOB + "schedule: {interval: .nan}\n").encode(), "schedule.interval=nan is not a finite number"),
    "endless grace": ((JOB + "stop_grace: .inf\n").encode(), "stop_grace=inf is not a finite number"),
    "grace past the cap": ((JOB + "stop_grace: 2h\n").encode(), "stop_grace='2h' is invalid: more than the 1-hour cap"),
    "infinite price": (SHAPE.replace("0.1", ".inf").encode(), "price_per_hour=inf is not a finite number"),
    "huge capacity": ((SHAPE + "capacity: 99999999999999999999\n").encode(), "outside the 64-bit integer range"),
    "1000^3 grid": (GRID.encode(), "the grid has 1000000000 points"),
    "NUL in YAML": (b"kind: Job\nname: a\x00b\n", "unacceptable character #x0000"),
    "NUL escaped": ((JOB + 'env: {A: "x\\0y"}\n').encode(), "env.A='x\\x00y' contains a NUL character"),
    "long label": ((JOB + f"labels: {{team: {'x' * 64}}}\n").encode(), "at most 63 characters"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TEXT))
def test_hostile_documents_are_one_line_exit_2_and_store_nothing(home, declared, case):
    body, expected = HOSTILE_TEXT[case]
    path = declared / f"{uuid.uuid4().hex}.yaml"
    path.write_bytes(EXTRA.encode() + body)  # all or nothing: the valid shape before it is not stored either
    before = catalog_rows(home)
    line = one_line_refusal(*costwise(home, "apply", str(path)))
    assert expected in line, line
    assert catalog_rows(home) == before


def test_files_that_are_no_document_files(home, declared):
    line = one_line_refusal(*costwise(home, "apply", "/dev/zero"))
    assert "file='/dev/zero' is larger than 1 MiB" in line
    line = one_line_refusal(*costwise(home, "apply", str(declared)))
    assert "cannot be read: Is a directory" in line
    big = declared / "big.yaml"
    big.write_text(JOB + "# " + "x" * (1024 * 1024) + "\n")
    assert "is larger than 1 MiB" in one_line_refusal(*costwise(home, "apply", str(big)))


@pytest.mark.parametrize("args,expected", [
    (["runs", "--limit", "99999999999999999999999"], "--limit 99999999999999999999999 is not between 1 and"),
    (["runs", "--limit", "0"], "--limit 0 is not between 1 and"),
    (["runs", "--limit", "lots"], "Invalid value for '--limit': Input should be a valid integer"),
    (["runs", "--nope"], "No such option: --nope (Possible options: --since) (see 'costwise runs --help')"),
    (["nosuch"], "No such command 'nosuch'."),
    (["runs", "--since", "99999999999d"], "--since: '99999999999d' is too far back"),
    (["report", "--format", "csv", "--out", "{here}/missing/r.csv"], "the folder '{here}/missing' does not exist"),
    (["daemon", "--misfire-grace", "9999999999999999d"], "--misfire-grace '9999999999999999d' is not between 1s and 30d"),
    (["daemon", "--misfire-grace", "inf"], "--misfire-grace: 'inf' is not a duration"),
    (["run", "train", "--max-runtime", "9" * 400 + "s"], "is not a finite duration"),
    (["run", "train", "--arg", "x" * 40_000], "args.0="),
    (["shapes", "--fit", "cpus=inf"], "--fit: cpus='inf' is invalid: Input should be a finite number"),
    (["--db", "garbage", "runs"], "--db 'garbage' is not a database URL"),
    (["--db", "mysql://u:secret@host/db", "runs"], "--db (a URL with credentials): 'mysql' is not one of sqlite, postgresql"),
])
def test_malformed_options_are_one_line_exit_2(home, declared, args, expected):
    args, expected = [a.format(here=declared) for a in args], expected.format(here=declared)
    line = one_line_refusal(*costwise(home, *args))
    assert expected in line and "secret" not in line, line
    assert catalog_rows(home) and costwise(home, "runs", "--json")[1].strip() == "[]"


def test_a_home_that_is_a_file(tmp_path):
    write(tmp_path / "afile", "x\n")
    line = one_line_refusal(*costwise(tmp_path / "afile", "runs"))
    assert f"--home '{tmp_path / 'afile'}' is not a folder" in line


def test_pipeline_params_that_are_not_finite(home, declared):
    write(declared / "p.yaml", "kind: Pipeline\nname: p\nparameters: {lr: 0.1, epochs: 3}\nsteps:\n"
                               "  - {name: a, job: train, args: ['${params.lr}', '${params.epochs}']}\n")
    assert costwise(home, "apply", str(declared / "p.yaml"))[0] == 0
    for pair, expected in [("lr=1e400", "--param lr='1e400' is not a finite number"),
                           ("lr=nan", "--param lr='nan' is not a finite number"),
                           ("epochs=99999999999999999999", "--param epochs='99999999999999999999' is outside the 64-bit"),
                           ("noequals", "--param 'noequals' is not key=value")]:
        assert expected in one_line_refusal(*costwise(home, "pipeline", "run", "p", "--param", pair))
    assert costwise(home, "pipeline", "runs", "--json")[1].strip() == "[]"


def test_an_unreachable_catalog_hides_its_password(home, declared):
    url = "postgresql+psycopg://costwise:hunter2@127.0.0.1:1/nowhere"
    line = one_line_refusal(*costwise(home, "--db", url, "runs"))
    assert "the catalog postgresql+psycopg://costwise:***@127.0.0.1:1/nowhere cannot be used" in line
    assert "hunter2" not in line


def test_a_misfire_grace_reaches_apscheduler_as_whole_seconds(app, tmp_path):
    """`--misfire-grace 10m` is 600.0 seconds; APScheduler 3 refuses a float there and the daemon died."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from scheduler.store.catalog import apply_documents, load_documents
    from scheduler.daemon.schedules import ScheduleSync

    write(tmp_path / "t.py", "pass\n")
    write(tmp_path / "d.yaml", SHAPE + "---\n" + JOB.replace("train.py", "t.py") + "schedule: {interval: 90s}\n")
    apply_documents(load_documents([tmp_path / "d.yaml"]), app.store, app.settings)
    scheduler = BackgroundScheduler()
    assert ScheduleSync(scheduler, app.store, misfire_grace_s=600.0).sync()
    assert [job.misfire_grace_time for job in scheduler.get_jobs()] == [600]


# -- the machine: mounts and the console script ------------------------------------------------------
def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount here ({' '.join(args)}: {proc.stderr.strip()}); needs root")


@pytest.fixture
def mounted(tmp_path):
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def script_refusal(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_read_only_home(tmp_path, mounted):
    home = tmp_path / "ro"
    home.mkdir()
    write(tmp_path / "train.py", "pass\n")
    write(tmp_path / "d.yaml", SHAPE + "---\n" + JOB)
    cli = Cli(home)
    assert cli("apply", str(tmp_path / "d.yaml")).returncode == 0
    before = catalog_rows(home)
    mount("--bind", str(home), str(home))
    mounted.append(home)
    mount("-o", "remount,bind,ro", str(home))
    write(tmp_path / "more.yaml", EXTRA.removesuffix("---\n"))
    assert "cannot be used" in script_refusal(cli("apply", str(tmp_path / "more.yaml")))
    assert "Read-only file system: " in script_refusal(Cli(home / "sub")("apply", str(tmp_path / "more.yaml")))
    subprocess.run(["umount", str(home)], check=True)
    mounted.remove(home)
    assert catalog_rows(home) == before


def test_a_full_disk(tmp_path, mounted):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk))
    mounted.append(disk)
    write(tmp_path / "train.py", "pass\n")
    write(tmp_path / "d.yaml", SHAPE)
    cli = Cli(disk / "home")
    assert cli("apply", str(tmp_path / "d.yaml")).returncode == 0
    before = catalog_rows(disk / "home")
    filler = disk / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    write(tmp_path / "more.yaml", SHAPE.replace("small", "other") + "---\n" + JOB)
    line = script_refusal(cli("apply", str(tmp_path / "more.yaml")))
    assert "cannot be used" in line or "No space left on device" in line, line
    filler.unlink()
    assert catalog_rows(disk / "home") == before
    line = script_refusal(_fill_and_apply(disk, tmp_path / "more.yaml"))
    assert "cannot be used" in line or "No space left on device" in line, line


def _fill_and_apply(disk: Path, document: Path) -> subprocess.CompletedProcess:
    """A brand-new catalog on a disk that is already full."""
    with open(disk / "filler", "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    return Cli(disk / "fresh")("apply", str(document))
