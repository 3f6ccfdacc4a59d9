"""Docker run overhead: a trivial job through costwise vs `docker run --rm` of the same command.

    .venv/bin/python bench/docker_overhead.py [--repeat 7] [--json]

Figures (medians over --repeat runs, seconds): `docker_run_s` (the docker CLI, container created,
started, waited for and removed), `costwise_engine_s` (submit → placed → container launched →
supervised → logs copied → container removed → run recorded, in one process, as the daemon does it),
`costwise_cli_s` (`costwise run --wait` as a fresh process, interpreter start-up and imports
included), and the ratios of the two costwise figures to `docker_run_s`. The image is the offline
test image (tests/images.py), built on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.images import TEST_IMAGE, ensure_test_image  # noqa: E402

JOB = "print('ok')\n"
DOCS = f"""
kind: Shape
name: bench-docker
backend: docker
vcpus: 1
memory_gib: 0.5
price_per_hour: 0.05
capacity: 1
---
kind: Job
name: bench-trivial
artifact: trivial.py
image: {TEST_IMAGE}
requirements: {{cpus: 1, memory_gib: 0.25}}
"""


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import docker

    from scheduler.store.catalog import apply_documents, load_documents
    from scheduler.runtime.context import AppContext
    from scheduler.store.settings import Settings

    ensure_test_image(docker.from_env())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "trivial.py").write_text(JOB)
        (tmp_path / "docs.yaml").write_text(DOCS)
        home = tmp_path / "home"
        settings = Settings(home=home, db_url=f"sqlite:///{home / 'catalog.db'}")
        ctx = AppContext(settings)
        apply_documents(load_documents([tmp_path / "docs.yaml"]), ctx.store, settings)
        engine = ctx.engine

        def docker_run():
            subprocess.run(["docker", "run", "--rm", TEST_IMAGE, "python3", "-c", JOB], check=True,
                           stdout=subprocess.DEVNULL)

        def costwise_engine():
            run = engine.run_to_completion(engine.submit("bench-trivial"))
            assert run.state == "SUCCEEDED", run.reason

        def costwise_cli():
            subprocess.run([sys.executable, "-m", "scheduler.cli", "run", "bench-trivial", "--wait", "--json"],
                           check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
                           env={**os.environ, "COSTWISE_HOME": str(home), "COSTWISE_DB": settings.db_url})

        docker_run(), costwise_engine()  # warm-up: page cache, first connection, imports
        samples = {"docker_run_s": [], "costwise_engine_s": [], "costwise_cli_s": []}
        for _ in range(args.repeat):  # interleaved, so drift hits all three alike
            samples["docker_run_s"].append(timed(docker_run))
            samples["costwise_engine_s"].append(timed(costwise_engine))
            samples["costwise_cli_s"].append(timed(costwise_cli))
        ctx.close()

    figures = {name: statistics.median(values) for name, values in samples.items()}
    figures["engine_vs_docker_run_ratio"] = figures["costwise_engine_s"] / figures["docker_run_s"]
    figures["cli_vs_docker_run_ratio"] = figures["costwise_cli_s"] / figures["docker_run_s"]
    figures["repeat"] = args.repeat
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


if __name__ == "__main__":
    main()
