"""Seeded generated-document fuzzing of `costwise apply` (issue 10).

Valid documents (the shipped retraining example, the README's shape, job and budget, a sweep) are
mutated a few hundred ways — wrong types, NaN / infinite / huge / negative numbers, long strings,
unknown keys, deep nesting, bad bytes, alias bombs — and each is applied through the real command
line (in this process: an exception escaping it fails the test, as a traceback would). Every case
must exit 0 or 2; a 2 is exactly one line on stderr and leaves the catalog as it was; after a 0 the
catalog still reads back and every schedule in it still builds its APScheduler trigger. At the end a
real daemon must start on the catalog the accepted cases left.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from scheduler.cli.examples import RETRAIN
from tests.conftest import catalog_rows, costwise_in_process as costwise

SEED = 20_240_610
CASES = 360

README_DOCS = [
    {"kind": "Shape", "name": "cpu-small", "backend": "local", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.085,
     "capacity": 4, "labels": {"pool": "general"}, "spot_price_per_hour": 0.03},
    {"kind": "Job", "name": "readme-train", "artifact": "train.py", "args": ["--epochs", "3"],
     "requirements": {"cpus": 1, "memory_gib": 2}, "max_runtime": "2h", "stop_grace": "10s", "max_wait": "10m",
     "retries": 1, "env": {"MODE": "full"}, "secret_env": {"API_TOKEN": "env:TRAIN_API_TOKEN"},
     "labels": {"team": "ml", "project": "churn"}, "schedule": {"interval": "30s"},
     "hooks": {"on_failure": [{"webhook": "https://chat.example/hook"}]}},
    {"kind": "Budget", "name": "ml-daily", "labels": {"team": "ml"}, "period": "day", "limit_usd": 50,
     "action": "hold"},
    {"kind": "Pipeline", "name": "tune", "parameters": {"epochs": 3}, "schedule": {"cron": "0 3 * * 1",
                                                                                   "timezone": "Europe/Paris"},
     "steps": [{"name": "prepare", "job": "prepare", "outputs": ["train.csv"]},
               {"name": "tune", "inputs": {"train.csv": "prepare/train.csv"}, "outputs": ["model.pkl", "metrics.json"],
                "args": ["--epochs", "${params.epochs}", "--learning-rate", "${trial.lr}"],
                "sweep": {"job": "train", "parameters": {"lr": {"loguniform": [0.0001, 0.1]},
                                                          "depth": {"choice": [3, 5, 7]}, "seed": {"grid": [1, 2]}},
                          "trials": 8, "parallel": 2, "seed": 7, "budget_usd": 5.0,
                          "objective": {"value": "metrics.json#regression.mse", "goal": "minimize"}}}]},
]


def base_documents() -> list[dict]:
    shipped = [d for p in (RETRAIN / "shapes.yaml", RETRAIN / "retrain.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    return shipped + README_DOCS


def deep(depth: int):
    value: object = "bottom"
    for _ in range(depth):
        value = {"d": value} if depth % 2 else [value]
    return value


HOSTILE_VALUES = [
    float("nan"), float("inf"), -float("inf"), -1, -1e308, 0, 0.0, 1e308, 2**63 - 1, 2**63, -(2**64), 10**400, 1e-320,
    "", " ", "x" * 70_000, "y" * 300, "\x00", "a\x00b", "é" * 100, "\u202e", "5 parsecs", "1e999s", "9" * 400 + "d",
    "-3s", "0s", "${params.nope}", "${trial.nope}", "../../etc/passwd", "Mars/Olympus", "*/0 * * * *", "0 3 * * 9",
    [], {}, [[[]]], None, True, False, list(range(2000)), {f"k{i}": i for i in range(100)}, deep(40), deep(5),
    ["Job"], {"grid": list(range(1000))}, {"cron": "0 3 * * *", "timezone": "Nowhere/Land"}, {"interval": ".nan"},
]
UNKNOWN_KEYS = ["memry", "kind", "extra", "\x00", "k" * 400, "requirements", "1", "steps"]
BAD_BYTES = [b"\xff", b"\xc3\x28", b"\x00", b"\t", b"\x1b[31m", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r", b"{[", b"&a *a"]
TEXT_PREFIXES = [
    "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
    "a: &a [1, *a]\n",
    "\n".join(['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
              + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 8)]) + "\n",
    "? [a, b]\n: c\n",
    "!!python/object/apply:os.system ['true']\n",
]


def paths(value, prefix=()):
    """Every (path) into a document, containers and leaves alike."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += paths(child, prefix + (index,))
    return out


def set_at(doc, path, value):
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def mutate_value(rng: random.Random, doc: dict) -> object:
    doc = copy.deepcopy(doc)
    choice = rng.random()
    candidates = [p for p in paths(doc) if p]
    if choice < 0.55:
        set_at(doc, rng.choice(candidates), copy.deepcopy(rng.choice(HOSTILE_VALUES)))
    elif choice < 0.65:
        path = rng.choice(candidates)
        node = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    elif choice < 0.8:
        mappings = [p for p in paths(doc) if isinstance(_at(doc, p), dict)]
        target = _at(doc, rng.choice(mappings))
        target[rng.choice(UNKNOWN_KEYS)] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    elif choice < 0.9:
        path = rng.choice(candidates)
        set_at(doc, path, [_at(doc, path)] if rng.random() < 0.5 else {"v": _at(doc, path)})
    elif choice < 0.95:
        doc["kind"] = copy.deepcopy(rng.choice([["Job"], 5, None, "Cluster", {"a": 1}, "job", "Shape"]))
    else:
        return copy.deepcopy(rng.choice([[doc], "just text", 42, None, [1, 2, 3]]))
    return doc


def _at(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def serialise(rng: random.Random, body: object) -> bytes:
    if rng.random() < 0.25:
        try:
            return json.dumps(body).encode()
        except (TypeError, ValueError):  # 10**400 is fine for json; a non-str key is not
            pass
    return yaml.safe_dump(body, allow_unicode=rng.random() < 0.5, sort_keys=False).encode()


def mutate_text(rng: random.Random, text: bytes) -> bytes:
    choice = rng.random()
    if choice < 0.45:
        at = rng.randrange(len(text) + 1)
        return text[:at] + rng.choice(BAD_BYTES) + text[at:]
    if choice < 0.65:
        return text[: rng.randrange(len(text) + 1)]
    if choice < 0.9:
        return rng.choice(TEXT_PREFIXES).encode() + text
    return text + b"\n---\n" + rng.choice([b"[unclosed", b"kind: Job", b"- 1", b"\xff\xfe", b"~"])


def generate_cases(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    docs = base_documents()
    cases = []
    for _ in range(count):
        doc = rng.choice(docs)
        if rng.random() < 0.75:
            text = serialise(rng, mutate_value(rng, doc))
            if rng.random() < 0.2:
                text = mutate_text(rng, text)
        else:
            text = mutate_text(rng, serialise(rng, doc))
        cases.append(text)
    return cases


def check_catalog_still_serves_a_daemon(home: Path) -> None:
    """What a daemon does first: read every entry back and build every schedule's trigger."""
    from scheduler.runtime.context import AppContext
    from scheduler.daemon.schedules import trigger_for
    from scheduler.store.settings import Settings

    app = AppContext(Settings.resolve(home))
    try:
        for kind in ("Shape", "Job", "Pipeline", "Budget"):
            for spec in app.store.list(kind):
                if getattr(spec, "schedule", None) is not None:
                    trigger_for(spec.schedule).get_next_fire_time(None, datetime.now(timezone.utc))
    finally:
        app.close()


def test_the_generator_is_seeded():
    assert generate_cases(SEED, 20) == generate_cases(SEED, 20)
    assert generate_cases(SEED, 20) != generate_cases(SEED + 1, 20)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(RETRAIN, root / "retrain")
    home = root / "home"
    base = root / "retrain" / "base.yaml"
    base.write_text(yaml.safe_dump_all(base_documents(), sort_keys=False))
    code, _, err = costwise(home, "apply", str(base))
    assert code == 0, err
    return home, root / "retrain"


def test_every_generated_document_exits_0_or_2_with_one_line(workspace):
    home, folder = workspace
    outcomes = {0: 0, 2: 0}
    for number, text in enumerate(generate_cases(SEED, CASES)):
        extra = f"kind: Shape\nname: extra-{number}\nvcpus: 1\nmemory_gib: 1\nprice_per_hour: 0.01\n---\n".encode()
        path = folder / f"case-{number}.yaml"
        path.write_bytes(extra + text)  # a valid document first: a refusal must not store it either
        before = catalog_rows(home)
        code, out, err = costwise(home, "apply", str(path))
        where = f"case {number} ({path}): exit {code}, stderr {err[:300]!r}"
        assert code in (0, 2), where
        assert "Traceback" not in err, where
        outcomes[code] += 1
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and out == "", where
            assert catalog_rows(home) == before, where + ": the catalog changed"
        else:
            check_catalog_still_serves_a_daemon(home)
        path.unlink()
    # the mix is meaningful only if both outcomes happen often
    assert outcomes[0] >= CASES // 10 and outcomes[2] >= CASES // 2, outcomes


def test_a_daemon_starts_on_what_the_accepted_cases_left(workspace):
    from tests.daemon_harness import DaemonProcess

    home, _ = workspace
    daemon = DaemonProcess(home).start()
    try:
        assert daemon.get("/health")["leader"] is True
        assert daemon.proc.poll() is None, daemon.log()
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        daemon.stop()
