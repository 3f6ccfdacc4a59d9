"""The content-addressed store for step outputs: objects by sha256, cache entries by key.

Objects are written to a temporary file and renamed into place, and an entry is written only
after all its objects are in, so a step killed mid-write leaves nothing half-written behind. Two
runs publishing the same step at once write the same bytes under the same names; a per-key lock
makes the second one find the first one's entry instead of running again.

The store repairs itself: a publish always renames its freshly hashed copy over the object's path
(so bytes that went bad are replaced the next time they are published), and a lookup that finds an
object whose bytes no longer match its name removes it. Steps get their inputs as private copies,
checked against the hash while they are copied (no hard links: a step that writes to an input
changes its own copy, never the stored object a sibling or a later step reads).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from . import safefs
from ..core.errors import CostwiseError

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class CorruptObject(CostwiseError):
    """A stored object's bytes no longer match its hash (it has been removed from the store)."""


def declared_output_problem(out_dir: Path, names: list[str]) -> str | None:
    """Why a finished step's declared outputs cannot be taken, or None: each must be a regular
    file right inside COSTWISE_OUTPUT_DIR (a link, FIFO, device or folder is never followed)."""
    if not names:
        return None
    try:
        folder = safefs.open_dir(out_dir)
    except FileNotFoundError:
        return f"declared output {names[0]} was not written to COSTWISE_OUTPUT_DIR"
    except safefs.UnsafeFile as exc:
        return f"COSTWISE_OUTPUT_DIR is a {exc.kind}, not a folder: not followed, no output stored"
    try:
        for name in names:
            try:
                info = os.lstat(name, dir_fd=folder)
            except FileNotFoundError:
                return f"declared output {name} was not written to COSTWISE_OUTPUT_DIR"
            if not stat.S_ISREG(info.st_mode):
                return f"declared output {name} is a {safefs.kind_of(info.st_mode)}, not a regular file: not followed, not stored"
    finally:
        os.close(folder)
    return None


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
        """Copy a regular file in by content; returns {sha256, bytes}. The file sits in a folder
        a job wrote: a link or a special file there is refused (safefs.UnsafeFile), not followed."""
        folder = safefs.open_dir(source.parent)
        try:
            fd = safefs.open_regular(source.name, folder)
        finally:
            os.close(folder)
        return self.put_fd(fd)

    def put_fd(self, fd: int) -> dict[str, Any]:
        """Copy an open file in by content (closing it). The verified copy always replaces what the
        object's path held: one rename, and a corrupt object is repaired by the next publish."""
        self._ensure()
        tmp_fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "rb") as src, os.fdopen(tmp_fd, "wb") as out:
                sha, size = safefs.copy_hashing(src, out)
                out.flush()
                os.fsync(out.fileno())
            target = self.object_path(sha)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp_name, _READ_ONLY)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return {"sha256": sha, "bytes": size}

    def verify(self, outputs: dict[str, dict[str, Any]]) -> str | None:
        """None when every object is there with its hash; else what is wrong, in one line. An
        object whose bytes went bad is removed, so the next publish of those bytes rewrites it."""
        for name, ref in outputs.items():
            try:
                fd = safefs.open_regular(str(self.object_path(ref["sha256"])))
            except FileNotFoundError:
                return f"cached output {name} is missing from the store"
            except safefs.UnsafeFile:
                self._discard(ref["sha256"], None)
                return f"cached output {name} is not a regular file in the store (removed)"
            opened = os.fstat(fd)
            if safefs.sha256_fd(fd)[0] != ref["sha256"]:
                self._discard(ref["sha256"], opened)
                return f"cached output {name} no longer matches its hash (the corrupt object was removed)"
        return None

    def _discard(self, digest: str, seen: os.stat_result | None) -> None:
        """Remove a bad object: only the one that was checked (a publish may have just repaired it)."""
        path = self.object_path(digest)
        with contextlib.suppress(FileNotFoundError):
            now = os.lstat(path)
            if seen is None or (now.st_dev, now.st_ino) == (seen.st_dev, seen.st_ino):
                path.unlink()

    def materialize(self, outputs: dict[str, dict[str, Any]], dest: Path) -> None:
        """Put private, read-only copies of objects into a step's (new) input folder, each checked
        against its hash while it is copied; CorruptObject (and the object removed) if one is not.
        Copies cost what hard links did not: measured with bench/store_copies.py on this ext4
        machine (no reflinks), 0.6-0.7 s for 100 MiB (6-7 ms per MiB, most of it the fsync that
        keeps a crash from handing a step zeros) against 0.1 ms for a link, and the disk for one
        copy per running step (removed when the step ends); a step can no longer change what it shares."""
        dest.mkdir(parents=True, exist_ok=True)
        folder = safefs.open_dir(dest)
        try:
            for name, ref in outputs.items():
                self._copy_verified(name, ref, folder)
        finally:
            os.close(folder)

    def _copy_verified(self, name: str, ref: dict[str, Any], folder: int) -> None:
        try:
            fd = safefs.open_regular(str(self.object_path(ref["sha256"])))
        except (FileNotFoundError, safefs.UnsafeFile):
            raise CorruptObject(f"input {name}: object {ref['sha256'][:12]} is missing from the store") from None
        opened = os.fstat(fd)
        try:
            with os.fdopen(fd, "rb") as src, safefs.atomic_create(folder, name, _READ_ONLY) as out:
                sha, _ = safefs.copy_hashing(src, out)
                if sha != ref["sha256"]:
                    raise CorruptObject(
                        f"input {name}: stored object {ref['sha256'][:12]} no longer matches its hash "
                        f"(removed; the next run publishes it again)"
                    )
        except CorruptObject:
            self._discard(ref["sha256"], opened)
            raise

    def read_json(self, ref: dict[str, Any]) -> Any:
        """A JSON object's value, its bytes checked against its hash first."""
        data = self.object_path(ref["sha256"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != ref["sha256"]:
            raise ValueError(f"stored object {ref['sha256'][:12]} no longer matches its hash")
        return json.loads(data)

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
