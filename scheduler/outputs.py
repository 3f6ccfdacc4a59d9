"""The content-addressed store for step outputs: objects by sha256, cache entries by key.

Objects are written to a temporary file and renamed into place, and an entry is written only
after all its objects are in, so a step killed mid-write leaves nothing half-written behind. Two
runs publishing the same step at once write the same bytes under the same names; a per-key lock
makes the second one find the first one's entry instead of running again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .artifacts import file_sha256

_CHUNK = 1 << 20


class OutputStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.entries = self.root / "entries"
        self.latest = self.root / "latest"
        self.locks = self.root / "locks"
        self.tmp = self.root / "tmp"

    def _ensure(self) -> None:
        for folder in (self.objects, self.entries, self.latest, self.locks, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    # -- objects -------------------------------------------------------------------------------
    def object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def put_file(self, source: Path) -> dict[str, Any]:
        """Copy a file in by content; returns {sha256, bytes}."""
        self._ensure()
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.object_path(sha)
            if target.exists():
                os.unlink(tmp_name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
                os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return {"sha256": sha, "bytes": source.stat().st_size}

    def verify(self, outputs: dict[str, dict[str, Any]]) -> str | None:
        """None when every object is there with its hash; else what is wrong, in one line."""
        for name, ref in outputs.items():
            path = self.object_path(ref["sha256"])
            if not path.exists():
                return f"cached output {name} is missing from the store"
            if file_sha256(path) != ref["sha256"]:
                return f"cached output {name} no longer matches its hash"
        return None

    def materialize(self, outputs: dict[str, dict[str, Any]], dest: Path) -> None:
        """Put objects into a step's input folder: hard links where possible, copies elsewhere."""
        dest.mkdir(parents=True, exist_ok=True)
        for name, ref in outputs.items():
            target = dest / name
            target.unlink(missing_ok=True)
            try:
                os.link(self.object_path(ref["sha256"]), target)
            except OSError:
                shutil.copyfile(self.object_path(ref["sha256"]), target)

    def read_json(self, ref: dict[str, Any]) -> Any:
        return json.loads(self.object_path(ref["sha256"]).read_text())

    # -- cache entries -------------------------------------------------------------------------
    def publish(self, key: str, outputs: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
        self._write_json(self.entries / f"{key}.json", {"key": key, "outputs": outputs, **meta})

    def lookup(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """(entry, None) on a verified hit; (None, why) on a miss after an entry was found broken."""
        path = self.entries / f"{key}.json"
        try:
            entry = json.loads(path.read_text())
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return None, "the cache entry was corrupt and was removed"
        problem = self.verify(entry["outputs"])
        if problem:
            path.unlink(missing_ok=True)  # a broken entry is removed and treated as a miss
            return None, problem
        return entry, None

    def remove(self, key: str) -> None:
        (self.entries / f"{key}.json").unlink(missing_ok=True)

    def last_parts(self, pipeline: str, step: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.latest / pipeline / f"{step}.json").read_text())
        except (OSError, ValueError):
            return None

    def save_parts(self, pipeline: str, step: str, parts: dict[str, Any]) -> None:
        self._write_json(self.latest / pipeline / f"{step}.json", parts)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        self._ensure()
        with open(self.locks / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_json(self, path: Path, data: Any) -> None:
        self._ensure()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, sort_keys=True, default=str)
        os.replace(tmp_name, path)
