"""Job artifacts: content hashes, and immutable stored copies under COSTWISE_HOME.

A job keeps a copy of its artifact taken at apply time, so editing the file afterwards does not
change the declared job; runs get a private working copy so they cannot change the stored one.

An artifact is a regular file, a folder or an archive; nothing else is read (a FIFO or a device
is refused before it is opened). The artifact path may be the user's own link to a file or folder
beside it or in the document's folder, never to one elsewhere. Inside a folder or archive only
regular files, folders and links that stay inside the artifact are taken (links are kept as
links and hashed as links); a special file or a link out is refused, naming the member. Each
stored copy has a manifest (its tree hash, kept outside the tree) that a checkout verifies while
it copies: a stored artifact that was altered refuses to run, and the next apply of the same
bytes replaces it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

from . import safefs
from .artifact_trees import copy_tree, file_sha256, tree_sha256
from ..core.errors import CostwiseError, SpecError

MAX_ARCHIVE_MEMBERS = 100_000
MAX_ARCHIVE_BYTES = 8 << 30  # unpacked: a zip or tar bomb is refused before it is unpacked
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


class AlteredArtifact(CostwiseError):
    """A stored artifact no longer matches the manifest taken when it was stored."""


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
    """The artifact's absolute path; SpecError if it does not exist, is neither a regular file
    nor a folder, or is a link to somewhere other than beside it or the document's folder."""
    path = Path(artifact).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    try:
        linked = stat.S_ISLNK(os.lstat(path).st_mode)
        info = os.stat(path)
    except OSError:
        raise SpecError(f"artifact={artifact!r} does not exist (looked at {path})", "artifact", artifact) from None
    resolved = path.resolve()
    if linked:
        allowed = [os.path.realpath(path.parent), os.path.realpath(base_dir or Path.cwd())]
        if not any(os.path.commonpath([top, resolved]) == top for top in allowed):
            raise SpecError(
                f"artifact={artifact!r} is a symlink to {resolved}, outside its folder and the document's; "
                f"name the file itself", "artifact", artifact,
            )
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise SpecError(
            f"artifact={artifact!r} is a {safefs.kind_of(info.st_mode)}, not a regular file or folder",
            "artifact", artifact,
        )
    return resolved


def content_hash(path: Path) -> str:
    """sha256 of the artifact: of the file's bytes, or of the folder's tree."""
    kind = artifact_kind(path)
    with _as_spec_error(path):
        return ("sha256:" + tree_sha256(path)) if kind == "dir" else ("sha256:" + file_sha256(path))


class _as_spec_error:
    """Turns a refused member (or an unreadable archive) into a one-line SpecError on the artifact."""

    def __init__(self, source: Path):
        self.source = str(source)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, SpecError):
            return False
        if isinstance(exc, safefs.UnsafeFile):
            message = f"artifact={self.source!r}: member {exc}; only regular files, folders and links inside are taken"
        elif isinstance(exc, tarfile.FilterError):
            message = f"artifact={self.source!r}: member {exc.tarinfo.name!r} refused ({exc})"
        elif isinstance(exc, (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError)) and not isinstance(exc, FileNotFoundError):
            message = f"artifact={self.source!r} cannot be read: {exc}"
        else:
            return False
        raise SpecError(message, "artifact", self.source) from None


class ArtifactStore:
    """Stored, immutable copies of job artifacts, keyed by content hash, each with a manifest."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.manifests = self.root / ".manifests"

    def path_for(self, digest: str) -> Path:
        return self.root / digest.split(":", 1)[-1]

    def manifest_for(self, digest: str) -> Path:
        return self.manifests / f"{digest.split(':', 1)[-1]}.json"

    def put(self, source: Path, digest: str) -> Path:
        """Copy the artifact in (unpacking archives) unless an intact copy is there already;
        return its folder. A copy that no longer matches its manifest is replaced."""
        target = self.path_for(digest)
        kind = artifact_kind(source)
        names = [source.name]
        if target.exists():
            if self._matches_manifest(target, digest):
                if kind == "file" and not (target / source.name).exists():
                    self._add_name(source, target, digest)
                return target
            names += [p.name for p in target.iterdir() if kind == "file" and p.name != source.name]
            _remove_tree(target)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            with _as_spec_error(source):
                self._unpack(source, kind, digest, staging / "tree", names)
                manifest = tree_sha256(staging / "tree")  # also refuses links an archive made to outside
            _make_read_only(staging / "tree")
            try:
                os.rename(staging / "tree", target)
            except OSError:
                if not target.exists():
                    raise
            self._write_manifest(digest, manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _unpack(self, source: Path, kind: str, digest: str, tree: Path, names: list[str]) -> None:
        if kind == "dir":
            copied = copy_tree(source, tree)
            if "sha256:" + copied != digest:
                raise SpecError(f"artifact={str(source)!r} changed while it was being stored; apply again",
                                "artifact", str(source))
            return
        with os.fdopen(safefs.open_regular(str(source)), "rb") as handle:
            if kind == "file":
                tree.mkdir()
                self._copy_file(handle, source, digest, tree, names)
            elif kind == "zip":
                with zipfile.ZipFile(handle) as archive:
                    infos = archive.infolist()
                    _check_members([i.filename for i in infos], [i.file_size for i in infos], source)
                    archive.extractall(tree)
            else:
                with tarfile.open(fileobj=handle) as archive:
                    members = archive.getmembers()
                    _check_members([m.name for m in members], [m.size for m in members], source)
                    archive.extractall(tree, filter="data")

    @staticmethod
    def _copy_file(handle, source: Path, digest: str, tree: Path, names: list[str]) -> None:
        """The file under its name (and, when repairing, every other name it was stored under)."""
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        first = tree / names[0]
        with open(first, "xb") as out:
            sha, _ = safefs.copy_hashing(handle, out)
        if "sha256:" + sha != digest:
            raise SpecError(f"artifact={str(source)!r} changed while it was being stored; apply again",
                            "artifact", str(source))
        first.chmod(mode)
        for name in names[1:]:
            shutil.copy2(first, tree / name)

    def _add_name(self, source: Path, target: Path, digest: str) -> None:
        """Same bytes under another file name: add that name beside the first one."""
        tmp = target / f".{source.name}.incoming"
        target.chmod(target.stat().st_mode | stat.S_IWUSR)
        with os.fdopen(safefs.open_regular(str(source)), "rb") as src, open(tmp, "xb") as out:
            sha, _ = safefs.copy_hashing(src, out)
        if "sha256:" + sha != digest:
            tmp.unlink()
            raise SpecError(f"artifact={str(source)!r} changed while it was being stored; apply again",
                            "artifact", str(source))
        tmp.chmod(stat.S_IMODE(source.stat().st_mode) & ~_WRITE_BITS)
        os.replace(tmp, target / source.name)
        self._write_manifest(digest, tree_sha256(target))

    def _matches_manifest(self, target: Path, digest: str) -> bool:
        expected = self._read_manifest(digest)
        if expected is None:
            return True  # stored by an older costwise: the first checkout takes its manifest
        try:
            return tree_sha256(target) == expected
        except (OSError, safefs.UnsafeFile):
            return False

    def _read_manifest(self, digest: str) -> str | None:
        try:
            return json.loads(self.manifest_for(digest).read_text())["tree_sha256"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return ""  # an unreadable manifest matches nothing: the copy is re-verified by a new apply

    def _write_manifest(self, digest: str, tree_hash: str) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        folder = safefs.open_dir(self.manifests)
        try:
            with safefs.atomic_create(folder, self.manifest_for(digest).name) as out:
                out.write(json.dumps({"artifact": digest, "tree_sha256": tree_hash}).encode())
        finally:
            os.close(folder)

    def checkout(self, digest: str, dest: Path) -> Path:
        """A private, writable working copy of a stored artifact for one run, checked against the
        stored copy's manifest while it is copied (an older store gets its manifest here)."""
        source = self.path_for(digest)
        if not source.exists():
            raise SpecError(f"artifact {digest} is missing from the store at {source}", "artifact", digest)
        if os.path.lexists(dest):  # a retry: the last attempt's folder is the job's, not reused
            _remove_tree(dest)
        try:
            copied = copy_tree(source, dest, writable=True, sync=False)  # a run's scratch copy: no fsync per launch
        except safefs.UnsafeFile as exc:
            raise AlteredArtifact(f"artifact {digest} in the store was altered: {exc}; apply the job again") from None
        expected = self._read_manifest(digest)
        if expected is None:
            self._write_manifest(digest, copied)
        elif copied != expected:
            _remove_tree(dest)
            raise AlteredArtifact(
                f"artifact {digest} in the store was altered since it was stored (tree hash {copied[:12]}, "
                f"manifest {expected[:12] or 'unreadable'}); refusing to run it; apply the job again to restore it"
            )
        return dest


def _remove_tree(path: Path) -> None:
    """Remove a folder a job may have written: rmtree never follows links; a link is unlinked."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def _check_members(names: list[str], sizes: list[int], source: Path) -> None:
    if len(names) > MAX_ARCHIVE_MEMBERS:
        raise SpecError(f"artifact={str(source)!r} has {len(names)} members, more than {MAX_ARCHIVE_MEMBERS}",
                        "artifact", str(source))
    if sum(sizes) > MAX_ARCHIVE_BYTES:
        raise SpecError(f"artifact={str(source)!r} unpacks to {sum(sizes)} bytes, more than {MAX_ARCHIVE_BYTES}",
                        "artifact", str(source))
    for name in names:
        if name.startswith("/") or ".." in Path(name).parts:
            raise SpecError(f"artifact={str(source)!r} has an unsafe member {name!r}", "artifact", str(source))


def _make_read_only(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & ~_WRITE_BITS)


def entrypoint_path_problem(entrypoint: str) -> str | None:
    """Why an entrypoint's spelling cannot name a file inside an artifact, or None."""
    if os.path.isabs(entrypoint) or ".." in Path(entrypoint).parts or not Path(entrypoint).parts:
        return "must be a relative path inside the artifact (no leading '/', no '..')"
    return None


def check_entrypoint(stored: Path, entrypoint: str) -> str | None:
    """Why an entrypoint cannot run inside a stored artifact, or None: it must be a relative path
    to a regular file inside it (through links only if they stay inside)."""
    problem = entrypoint_path_problem(entrypoint)
    if problem:
        return problem
    top = os.path.realpath(stored)
    real = os.path.realpath(stored / entrypoint)
    if os.path.commonpath([top, real]) != top:
        return "leads outside the artifact"
    try:
        info = os.stat(real)
    except OSError:
        return "is not a file inside the artifact"
    return None if stat.S_ISREG(info.st_mode) else f"is a {safefs.kind_of(info.st_mode)} inside the artifact, not a file"


def check_unstored(source: Path, digest: str, entrypoint: str | None) -> str | None:
    """What storing the artifact would refuse, and check_entrypoint's answer, without storing it
    (`apply --diff`): a file or folder is checked in place (content_hash refused its bad members already),
    an archive is unpacked into a temporary folder outside the store, refused as put refuses it."""
    kind = artifact_kind(source)
    if kind == "dir":
        return entrypoint and check_entrypoint(source, entrypoint)
    if kind == "file":
        problem = entrypoint and entrypoint_path_problem(entrypoint)
        if problem or not entrypoint:
            return problem or None
        return None if os.path.normpath(entrypoint) == source.name else "is not a file inside the artifact"
    with tempfile.TemporaryDirectory(prefix="costwise-diff-") as scratch:
        tree = Path(scratch) / "tree"
        with _as_spec_error(source):
            ArtifactStore(Path(scratch))._unpack(source, kind, digest, tree, [source.name])
            tree_sha256(tree)  # also refuses links an archive made to outside
        return entrypoint and check_entrypoint(tree, entrypoint)


def entry_command(workdir: Path, artifact_name: str, entrypoint: str | None, python: str) -> list[str]:
    """The argv that runs an artifact: python for .py, bash for .sh, else the file itself."""
    target = entrypoint or artifact_name
    path = workdir / target
    if path.suffix == ".py":
        return [python, target]
    if path.suffix == ".sh":
        return ["bash", target]
    return [f"./{target}" if not target.startswith("/") else target]
