"""Hostile jobs and hostile artifacts, for real: nothing a job controls is followed, the step store
repairs itself and hands out inputs a step cannot change, and bad artifacts are refused at apply.

The same hostile pipeline runs on a local shape and on a docker shape (the container is root and
its folders are bind mounts of the host's, so a link it plants points at the host's files).
"""

import hashlib
import json
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest

from scheduler.store.catalog import apply_documents, load_documents
from scheduler.store.outputs import OutputStore
from scheduler.runtime.pipeline_runner import PipelineRunner
from tests.conftest import write
from tests.integration.test_cli import SHAPES, snapshot
from tests.integration.test_docker_runs import docker_client  # noqa: F401 - the session's Docker engine

HOSTILE_STEPS = {
    # plants results.json(.tmp) links to host files in its artifacts folder, writes a.json
    "plant": """
        import os, pathlib, sys
        art = pathlib.Path(os.environ["COSTWISE_ARTIFACTS_DIR"])
        os.symlink(sys.argv[1], art / "results.json.tmp")
        os.symlink(sys.argv[2], art / "results.json")
        os.symlink("/dev/zero", pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "zero"))
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "a.json").write_text('{"v": "original"}')
    """,
    # declares leak.txt, which is a link to a host-only file
    "leak": """
        import os, pathlib, sys
        os.symlink(sys.argv[1], pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "leak.txt"))
    """,
    # appends to its input (as root in a container: the read-only bit does not stop it), copies it out
    "mutate": """
        import os, pathlib
        inp = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"], "a.json")
        with open(inp, "a") as f:
            f.write("MUTATED")
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "b.json").write_text(inp.read_text())
    """,
    # reads what it was given
    "read": """
        import json, os, pathlib
        inp = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"])
        seen = {p.name: p.read_text() for p in sorted(inp.iterdir())}
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "c.json").write_text(json.dumps(seen, sort_keys=True))
    """,
}

HOSTILE_PIPELINE = """
kind: Pipeline
name: hostile
backends: [BACKEND]
steps:
  - {name: a, job: plant, args: ["HOST_TMP", "HOST_RESULTS"], outputs: [a.json]}
  - {name: evil, job: leak, args: ["SECRET"], outputs: [leak.txt]}
  - {name: after-evil, job: read, inputs: {leak.txt: evil/leak.txt}, outputs: [c.json]}
  - {name: b, job: mutate, inputs: {a.json: a/a.json}, outputs: [b.json]}
  - {name: c, job: read, inputs: {a.json: a/a.json, b.json: b/b.json}, outputs: [c.json]}
"""

DOCKER_SHAPE = """
kind: Shape
name: dock
backend: docker
vcpus: 1
memory_gib: 0.5
price_per_hour: 0.05
capacity: 4
"""

LOCAL_SHAPE = """
kind: Shape
name: loc
vcpus: 2
memory_gib: 2
price_per_hour: 0.05
capacity: 4
"""


@pytest.fixture(params=["local", "docker"])
def backend(request):
    if request.param == "docker":
        request.getfixturevalue("docker_client")
    return request.param


def _hostile_project(app, root: Path, backend: str):
    from tests.images import TEST_IMAGE

    host = root.parent / "host"
    files = {"tmp": write(host / "tmp-target.txt", "host file\n"), "results": write(host / "results-target.txt", "host results\n"),
             "secret": write(host / "secret.txt", "host-only secret\n", mode=0o600)}
    docs = [DOCKER_SHAPE if backend == "docker" else LOCAL_SHAPE]
    for name, body in HOSTILE_STEPS.items():
        write(root / f"{name}.py", body)
        image = f"image: {TEST_IMAGE}\n" if backend == "docker" else ""
        docs.append(f"kind: Job\nname: {name}\nartifact: {name}.py\n{image}requirements: {{cpus: 0.5, memory_gib: 0.1}}\n")
    docs.append(HOSTILE_PIPELINE.replace("BACKEND", backend).replace("HOST_TMP", str(files["tmp"]))
                .replace("HOST_RESULTS", str(files["results"])).replace("SECRET", str(files["secret"])))
    write(root / "docs.yaml", "---\n".join(docs))
    apply_documents(load_documents([root / "docs.yaml"]), app.store, app.settings)
    return files


def _run(app, name, **kw):
    runner = PipelineRunner(app.engine)
    record = runner.execute(runner.submit(name, {}, **kw)["id"])
    record["by_step"] = {s["step"]: s for s in record["steps"]}
    return record


def _objects(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (home / "store" / "objects").rglob("*") if p.is_file()}


def test_a_hostile_pipeline_follows_no_link_and_shares_no_input(app, home, tmp_path, backend):
    files = _hostile_project(app, tmp_path / "project", backend)
    before = {k: (p.read_bytes(), p.stat().st_mode) for k, p in files.items()}
    record = _run(app, "hostile")
    steps = record["by_step"]
    assert {s["backend"] for s in record["steps"] if s["state"] != "SKIPPED"} == {backend}

    # results.json(.tmp) were links to host files: the links were replaced, the files untouched
    assert {k: (p.read_bytes(), p.stat().st_mode) for k, p in files.items()} == before
    artifacts = Path(steps["a"]["artifacts_dir"])
    results = artifacts / "results.json"
    assert results.is_file() and not results.is_symlink()
    summary = json.loads(results.read_text())
    assert summary["run_id"] == steps["a"]["id"]
    assert summary["outputs"]["zero"] == {"type": "symlink"}  # listed, not read (a link to /dev/zero)

    # a declared output that is a link to a host-only file fails the step and never reaches the store
    assert steps["evil"]["state"] == "FAILED"
    assert "declared output leak.txt is a symlink, not a regular file" in steps["evil"]["reason"]
    assert steps["after-evil"]["state"] == "SKIPPED"
    secret_sha = hashlib.sha256(files["secret"].read_bytes()).hexdigest()
    assert secret_sha not in _objects(home)

    # b appended to its input: the stored object and c (which reads the same input after b) are unaffected
    assert steps["b"]["state"] == steps["c"]["state"] == "SUCCEEDED"
    for sha, data in _objects(home).items():
        assert hashlib.sha256(data).hexdigest() == sha
    c_out = app.store.get_run(steps["c"]["id"]).extra["outputs"]["c.json"]
    seen = json.loads(_objects(home)[c_out["sha256"]])
    assert seen["a.json"] == '{"v": "original"}' and seen["b.json"] == '{"v": "original"}MUTATED'

    # and the cache holds the right bytes: a rerun reuses b and c, whose outputs are the correct ones
    again = _run(app, "hostile")
    assert {n: again["by_step"][n]["state"] for n in ("a", "b", "c")} == {"a": "CACHED", "b": "CACHED", "c": "CACHED"}
    assert app.store.get_run(again["by_step"]["c"]["id"]).extra["outputs"]["c.json"] == c_out


FLOW = """
kind: Pipeline
name: flow
steps:
  - {name: a, job: write-a, outputs: [a.json]}
  - {name: b, job: copy, inputs: {in.json: a/a.json}, outputs: [out.json]}
"""


@pytest.fixture
def flow(app, tmp_path):
    root = tmp_path / "flow"
    write(root / "write_a.py", "import os, pathlib\npathlib.Path(os.environ['COSTWISE_OUTPUT_DIR'], 'a.json').write_text('{\"v\": 1}')\n")
    write(root / "copy.py", "import os, pathlib\nsrc = pathlib.Path(os.environ['COSTWISE_INPUT_DIR'], 'in.json').read_text()\n"
                            "pathlib.Path(os.environ['COSTWISE_OUTPUT_DIR'], 'out.json').write_text(src)\n")
    write(root / "docs.yaml", LOCAL_SHAPE + "---\nkind: Job\nname: write-a\nartifact: write_a.py\n"
                              "---\nkind: Job\nname: copy\nartifact: copy.py\n---\n" + FLOW)
    apply_documents(load_documents([root / "docs.yaml"]), app.store, app.settings)
    return root


def test_a_corrupt_object_is_repaired_by_the_next_publish_and_never_poisons_a_dependant(app, home, flow):
    first = _run(app, "flow")
    ref = app.store.get_run(first["by_step"]["a"]["id"]).extra["outputs"]["a.json"]
    obj = home / "store" / "objects" / ref["sha256"][:2] / ref["sha256"]
    obj.chmod(0o644)
    obj.write_text('{"v": 666}')  # one bad object under a good name

    second = _run(app, "flow", force_steps=["b"])  # b reruns on whatever a's object now holds
    assert second["by_step"]["a"]["state"] == "SUCCEEDED"
    reason = app.store.get_run(second["by_step"]["a"]["id"]).extra["cache"]["reason"]
    assert "cached output a.json no longer matches its hash" in reason
    assert hashlib.sha256(obj.read_bytes()).hexdigest() == ref["sha256"]  # repaired by the publish
    b_out = app.store.get_run(second["by_step"]["b"]["id"]).extra["outputs"]["out.json"]
    assert (home / "store" / "objects" / b_out["sha256"][:2] / b_out["sha256"]).read_text() == '{"v": 1}'

    third = _run(app, "flow")
    assert [s["state"] for s in third["steps"]] == ["CACHED", "CACHED"]


def test_the_store_removes_a_corrupt_object_and_rewrites_it(tmp_path):
    store = OutputStore(tmp_path / "store")
    write(tmp_path / "out" / "x.bin", "good bytes")
    ref = store.put_file(tmp_path / "out" / "x.bin")
    obj = store.object_path(ref["sha256"])
    obj.chmod(0o644)
    obj.write_text("bad bytes!")
    assert "no longer matches its hash" in store.verify({"x.bin": ref})
    assert not obj.exists()  # removed on the lookup that found it
    obj.parent.mkdir(exist_ok=True)
    obj.write_text("bad bytes!")
    assert store.put_file(tmp_path / "out" / "x.bin") == ref
    assert obj.read_text() == "good bytes"  # the publish replaced the bad bytes


def test_inputs_are_private_verified_copies(tmp_path):
    store = OutputStore(tmp_path / "store")
    write(tmp_path / "out" / "x.bin", "shared bytes")
    ref = store.put_file(tmp_path / "out" / "x.bin")
    store.materialize({"x.bin": ref}, tmp_path / "step1")
    copy = tmp_path / "step1" / "x.bin"
    assert os.stat(copy).st_ino != os.stat(store.object_path(ref["sha256"])).st_ino
    copy.chmod(0o644)
    copy.write_text("changed by the step")
    assert store.object_path(ref["sha256"]).read_text() == "shared bytes"
    from scheduler.store.outputs import CorruptObject

    store.object_path(ref["sha256"]).chmod(0o644)
    store.object_path(ref["sha256"]).write_text("rotten bytes")
    with pytest.raises(CorruptObject, match="input x.bin: stored object .* no longer matches its hash"):
        store.materialize({"x.bin": ref}, tmp_path / "step2")
    assert not (tmp_path / "step2" / "x.bin").exists()
    assert not store.object_path(ref["sha256"]).exists()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_an_output_that_is_not_a_regular_file_fails_the_step_naming_it(app, home, tmp_path, kind):
    root = tmp_path / "odd"
    make = {"symlink": "os.symlink('/etc/hostname', p)", "fifo": "os.mkfifo(p)", "directory": "os.mkdir(p)"}[kind]
    write(root / "odd.py", f"import os\np = os.path.join(os.environ['COSTWISE_OUTPUT_DIR'], 'model.pkl')\n{make}\n")
    write(root / "docs.yaml", LOCAL_SHAPE + "---\nkind: Job\nname: odd\nartifact: odd.py\n---\nkind: Pipeline\n"
                              "name: odd\nsteps:\n  - {name: s, job: odd, outputs: [model.pkl]}\n")
    apply_documents(load_documents([root / "docs.yaml"]), app.store, app.settings)
    started = time.monotonic()
    record = _run(app, "odd")
    assert time.monotonic() - started < 60
    word = {"symlink": "symlink", "fifo": "FIFO", "directory": "directory"}[kind]
    assert record["by_step"]["s"]["state"] == "FAILED"
    assert f"declared output model.pkl is a {word}, not a regular file" in record["by_step"]["s"]["reason"]
    assert not (home / "store" / "objects").exists() or not _objects(home)


# -- stored artifacts: verified at checkout ----------------------------------------------------------

@pytest.fixture
def declared(cli, tmp_path):
    write(tmp_path / "shapes.yaml", SHAPES)
    write(tmp_path / "train.py", "print('honest')\n")
    write(tmp_path / "job.yaml", "kind: Job\nname: train\nartifact: train.py\nrequirements: {cpus: 2, memory_gib: 4}\n")
    proc = cli("apply", str(tmp_path / "shapes.yaml"), str(tmp_path / "job.yaml"))
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def _stored(home: Path) -> Path:
    (folder,) = [p for p in (home / "artifacts").iterdir() if not p.name.startswith(".")]
    return folder


def test_a_tampered_stored_artifact_refuses_to_run_until_applied_again(cli, home, declared):
    stored = _stored(home) / "train.py"
    stored.chmod(0o644)
    stored.write_text("print('tampered')\n")
    run = cli.json("run", "train", "--wait")
    assert run["state"] == "FAILED"
    assert f"artifact sha256:{_stored(home).name} in the store was altered" in run["reason"]
    assert "tampered" not in cli("logs", run["id"]).stdout
    assert cli("apply", str(declared / "job.yaml")).returncode == 0  # the same bytes again repair the copy
    run = cli.json("run", "train", "--wait")
    assert run["state"] == "SUCCEEDED" and "honest" in cli("logs", run["id"]).stdout


def test_a_store_without_manifests_gets_one_on_first_checkout(cli, home, declared):
    manifests = home / "artifacts" / ".manifests"
    for path in manifests.iterdir():
        path.unlink()  # as an older costwise left it
    assert cli.json("run", "train", "--wait")["state"] == "SUCCEEDED"
    (manifest,) = manifests.iterdir()
    assert json.loads(manifest.read_text())["artifact"] == f"sha256:{_stored(home).name}"


# -- artifacts at apply: exit 2, one line, nothing stored ----------------------------------------------

def _refused(cli, declared, body: str, expected: str):
    write(declared / "bad.yaml", "kind: Shape\nname: extra\nvcpus: 1\nmemory_gib: 1\nprice_per_hour: 0.01\n---\n" + body)
    before = snapshot(cli)
    proc = cli("apply", str(declared / "bad.yaml"), timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert snapshot(cli) == before


def test_special_file_artifacts_are_refused_without_being_read(cli, declared):
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: /dev/zero\n", "artifact='/dev/zero' is a character device")
    os.mkfifo(declared / "pipe.py")
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: pipe.py\n", "artifact='pipe.py' is a FIFO")


def test_a_symlink_artifact_is_followed_only_beside_itself(cli, declared, tmp_path):
    outside = write(tmp_path.parent / f"{tmp_path.name}-outside" / "secret.py", "print('not yours')\n", mode=0o600)
    os.symlink(outside, declared / "leak.py")
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: leak.py\n", "artifact='leak.py' is a symlink to")
    os.symlink("train.py", declared / "current.py")  # the user's own link to a file beside it is fine
    write(declared / "ok.yaml", "kind: Job\nname: current\nartifact: current.py\n")
    assert cli("apply", str(declared / "ok.yaml")).returncode == 0


def test_folder_artifacts_keep_inner_links_and_refuse_links_out_and_special_files(cli, declared, tmp_path):
    project = declared / "project"
    write(project / "main.py", "import pathlib\nprint(pathlib.Path('data/link.txt').read_text())\n")
    write(project / "data" / "real.txt", "inner data\n")
    os.symlink("real.txt", project / "data" / "link.txt")
    write(declared / "ok.yaml", "kind: Job\nname: proj\nartifact: project\nentrypoint: main.py\n")
    assert cli("apply", str(declared / "ok.yaml")).returncode == 0
    run = cli.json("run", "proj", "--wait")
    assert run["state"] == "SUCCEEDED" and "inner data" in cli("logs", run["id"]).stdout
    work = Path(run["artifacts_dir"]).parent / "work"
    assert os.readlink(work / "data" / "link.txt") == "real.txt"  # kept as a link

    os.symlink("/etc/hostname", project / "data" / "out.txt")
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: project\nentrypoint: main.py\n",
             "member data/out.txt is a symlink to /etc/hostname, outside the artifact")
    (project / "data" / "out.txt").unlink()
    os.symlink("../../../escape", project / "data" / "up.txt")
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: project\nentrypoint: main.py\n",
             "member data/up.txt is a symlink to ../../../escape, outside the artifact")
    (project / "data" / "up.txt").unlink()
    os.mkfifo(project / "data" / "pipe")
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: project\nentrypoint: main.py\n", "member data/pipe is a FIFO")


@pytest.mark.parametrize("entrypoint", ["../../../../bin/true", "/bin/true"])
def test_an_entrypoint_must_stay_inside_the_artifact(cli, declared, entrypoint):
    write(declared / "project" / "main.py", "print('x')\n")
    _refused(cli, declared, f"kind: Job\nname: bad\nartifact: project\nentrypoint: {entrypoint!r}\n",
             f"entrypoint={entrypoint!r} must be a relative path inside the artifact")


def test_archives_with_links_out_or_garbage_are_refused(cli, declared):
    import io

    archive = declared / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"print('x')\n"
        info = tarfile.TarInfo("main.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: bundle.tar.gz\nentrypoint: main.py\n", "member 'passwd' refused")
    (declared / "junk.tar.gz").write_bytes(b"not an archive at all")
    _refused(cli, declared, "kind: Job\nname: bad\nartifact: junk.tar.gz\nentrypoint: main.py\n", "cannot be read")


def test_a_docker_retry_does_not_bind_what_the_last_attempt_linked_into_its_inputs(cli, home, tmp_path, docker_client):
    from tests.images import TEST_IMAGE

    secret = write(tmp_path / "host" / "secret.txt", "host-only secret\n", mode=0o600)
    write(tmp_path / "retry.py", f"""
        import os, pathlib
        marker = pathlib.Path(os.environ["COSTWISE_CHECKPOINT_DIR"], "attempts")
        first = not marker.exists()
        marker.write_text("1")
        if first:  # plant a link to a host file for the next attempt's container, then fail
            os.symlink({str(secret)!r}, pathlib.Path(os.environ["COSTWISE_INPUT_DIR"], "leak"))
            raise SystemExit(3)
        try:
            seen = pathlib.Path({str(secret)!r}).read_text()
        except OSError as exc:
            seen = type(exc).__name__
        pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "seen.txt").write_text(seen)
    """)
    write(tmp_path / "docs.yaml", DOCKER_SHAPE + f"---\nkind: Job\nname: retry\nartifact: retry.py\nimage: {TEST_IMAGE}\n"
                                                 "retries: 1\nrequirements: {cpus: 0.5, memory_gib: 0.1}\n")
    assert cli("apply", str(tmp_path / "docs.yaml")).returncode == 0
    run = cli.json("run", "retry", "--wait")
    assert run["state"] == "SUCCEEDED", run
    seen = (home / "runs" / run["id"] / "outputs" / "seen.txt").read_text()
    assert "secret" not in seen and seen == "FileNotFoundError"
