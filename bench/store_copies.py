"""What the self-repairing step store costs: a publish that always renames its verified copy into
place (instead of keeping an existing object), and inputs handed out as verified copies (instead of
hard links), on one file of --mb MiB.

    python bench/store_copies.py [--mb 100] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import median, report

from scheduler.store.outputs import OutputStore


def timed(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "out" / "big.bin"
        source.parent.mkdir()
        source.write_bytes(os.urandom(args.mb << 20))
        store = OutputStore(root / "store")
        ref = store.put_file(source)
        obj = store.object_path(ref["sha256"])
        republish = timed(lambda: store.put_file(source), args.repeat)  # the object exists: replaced
        rounds = iter(range(10**6))
        copy = timed(lambda: store.materialize({"big.bin": ref}, root / f"in-{next(rounds)}"), args.repeat)

        def link() -> None:
            dest = root / f"link-{next(rounds)}"
            dest.mkdir()
            os.link(obj, dest / "big.bin")

        hard_link = timed(link, args.repeat)
    report({
        "file_mib": args.mb,
        "republish_s": republish,
        "materialize_verified_copy_s": copy,
        "materialize_verified_copy_s_per_mib": copy / args.mb,
        "materialize_hard_link_s": hard_link,
    }, args.json)


if __name__ == "__main__":
    main()
