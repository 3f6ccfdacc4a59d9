"""Job artifacts: content hashes, and immutable stored copies under COSTWISE_HOME.

A job keeps a copy of its artifact taken at apply time, so editing the file afterwards does not
change the declared job; runs get a private working copy so they cannot change the stored one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import SpecError

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: Path) -> str:
    """Hash of a folder: relative paths, executable bits and file contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{rel}\0{mode}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def artifact_kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        return "dir"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    return "file"


def resolve_artifact(artifact: str, base_dir: Path | None = None) -> Path:
    """The artifact's absolute path; SpecError if it does not exist."""
    path = Path(artifact).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.exists():
        raise SpecError(f"artifact={artifact!r} does not exist (looked at {path})", "artifact", artifact)
    return path.resolve()


def content_hash(path: Path) -> str:
    """sha256 of the artifact: of the file's bytes, or of the folder's tree."""
    kind = artifact_kind(path)
    return ("sha256:" + tree_sha256(path)) if kind == "dir" else ("sha256:" + file_sha256(path))


class ArtifactStore:
    """Stored, immutable copies of job artifacts, keyed by content hash."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        return self.root / digest.split(":", 1)[-1]

    def put(self, source: Path, digest: str) -> Path:
        """Copy the artifact in (unpacking archives) unless it is there already; return its folder."""
        target = self.path_for(digest)
        kind = artifact_kind(source)
        if target.exists():
            if kind == "file" and not (target / source.name).exists():
                self._add_name(source, target)
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            if kind == "dir":
                shutil.copytree(source, staging / "tree", ignore=shutil.ignore_patterns("__pycache__"))
            elif kind == "zip":
                with zipfile.ZipFile(source) as archive:
                    _check_members(archive.namelist(), source)
                    archive.extractall(staging / "tree")
            elif kind == "tar":
                with tarfile.open(source) as archive:
                    _check_members(archive.getnames(), source)
                    archive.extractall(staging / "tree", filter="data")
            else:
                (staging / "tree").mkdir()
                shutil.copy2(source, staging / "tree" / source.name)
            _make_read_only(staging / "tree")
            try:
                os.rename(staging / "tree", target)
            except OSError:
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _add_name(self, source: Path, target: Path) -> None:
        """Same bytes under another file name: add that name beside the first one."""
        tmp = target / f".{source.name}.incoming"
        target.chmod(target.stat().st_mode | stat.S_IWUSR)
        shutil.copy2(source, tmp)
        os.replace(tmp, target / source.name)

    def checkout(self, digest: str, dest: Path) -> Path:
        """A private, writable working copy of a stored artifact for one run."""
        source = self.path_for(digest)
        if not source.exists():
            raise SpecError(f"artifact {digest} is missing from the store at {source}", "artifact", digest)
        shutil.copytree(source, dest, copy_function=shutil.copy, dirs_exist_ok=True)
        for path in [dest, *dest.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        return dest


def _check_members(names: list[str], source: Path) -> None:
    for name in names:
        if name.startswith("/") or ".." in Path(name).parts:
            raise SpecError(f"artifact={str(source)!r} has an unsafe member {name!r}", "artifact", str(source))


def _make_read_only(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def entry_command(workdir: Path, artifact_name: str, entrypoint: str | None, python: str) -> list[str]:
    """The argv that runs an artifact: python for .py, bash for .sh, else the file itself."""
    target = entrypoint or artifact_name
    path = workdir / target
    if path.suffix == ".py":
        return [python, target]
    if path.suffix == ".sh":
        return ["bash", target]
    return [f"./{target}" if not target.startswith("/") else target]
