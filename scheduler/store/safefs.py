"""File operations on folders a job can write, safe for a daemon that may run as root.

A run's folders (artifacts, inputs, outputs, work, checkpoints) are the job's: it may plant a symlink
to a host file, a FIFO that blocks whoever opens it, or a device node (root in a container can
``mknod``). So nothing here follows a link in the last component or below a folder opened with it,
and nothing opens a file before ``lstat`` says it is a regular one (and ``fstat`` confirms it is the
same one): folders are opened ``O_DIRECTORY | O_NOFOLLOW`` and everything else is reached relative to
their descriptors; new files are created ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name and
renamed into place, which replaces a planted link itself, never its target.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Iterator

from ..core.errors import CostwiseError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_KINDS = {
    stat.S_IFREG: "regular file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink", stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
}
MAX_DEPTH = 64  # deeper trees are refused: a walk holds one descriptor per level


class UnsafeFile(CostwiseError):
    """A path is not what costwise may read or write there (a link, a special file, ...)."""

    def __init__(self, name: str, kind: str, detail: str | None = None):
        super().__init__(f"{name} is {detail or _article(kind)}")
        self.name = name
        self.kind = kind


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def kind_of(mode: int) -> str:
    """'regular file', 'symlink', 'FIFO', ... for an ``st_mode``."""
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def open_dir(path: str | Path, dir_fd: int | None = None) -> int:
    """A descriptor of a real folder (the last component must not be a link)."""
    try:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise UnsafeFile(str(path), kind_of(os.lstat(path, dir_fd=dir_fd).st_mode)) from None


def open_regular(name: str, dir_fd: int | None = None) -> int:
    """A read descriptor of a regular file, refused before opening when it is anything else."""
    before = os.lstat(name, dir_fd=dir_fd)
    if not stat.S_ISREG(before.st_mode):
        raise UnsafeFile(name, kind_of(before.st_mode))
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise UnsafeFile(name, kind_of(after.st_mode), "replaced while it was being opened")
    os.set_blocking(fd, True)
    return fd


def open_beneath(root: str | Path, relpath: str) -> int:
    """A regular file ``relpath`` below ``root``, no component of it a link, nothing outside."""
    parts = Path(relpath).parts
    if not parts or Path(relpath).is_absolute() or ".." in parts:
        raise UnsafeFile(relpath, "path", "not a relative path inside the folder")
    fd = open_dir(root)
    try:
        for part in parts[:-1]:
            inner = open_dir(part, fd)
            os.close(fd)
            fd = inner
        return open_regular(parts[-1], fd)
    finally:
        os.close(fd)


def read_beneath(root: str | Path, relpath: str, limit: int = 64 << 20) -> bytes:
    """The bytes of a regular file below ``root`` (see open_beneath); ValueError past ``limit``."""
    with os.fdopen(open_beneath(root, relpath), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{relpath} is larger than {limit} bytes")
    return data


def sha256_fd(fd: int) -> tuple[str, int]:
    """(sha256 hex, bytes) of an open file, read from where it is; closes it."""
    with os.fdopen(fd, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()


def copy_hashing(src: BinaryIO, out: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
    """Copy a stream, hashing the bytes that were written: (sha256 hex, bytes)."""
    digest, size = hashlib.sha256(), 0
    while data := src.read(chunk):
        digest.update(data)
        out.write(data)
        size += len(data)
    return digest.hexdigest(), size


@contextlib.contextmanager
def atomic_create(dir_fd: int, name: str, mode: int = 0o644, sync: bool = True) -> Iterator[BinaryIO]:
    """Write ``name`` in the folder ``dir_fd`` whole or not at all: a fresh temp file (never an
    existing path) renamed over ``name`` once written and synced (``sync=False``: a scratch copy
    that a crash makes worthless anyway, e.g. a run's working copy of its artifact)."""
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, _CREATE_FLAGS, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def walk(dir_fd: int, max_depth: int = MAX_DEPTH) -> Iterator[tuple[tuple[str, ...], os.stat_result, int]]:
    """Every entry below a folder as (path parts, lstat, descriptor of its folder), parents first
    and siblings by name (the order of sorted path parts); links and special files are yielded,
    never followed or opened; only real folders are entered."""
    yield from _walk(dir_fd, (), max_depth)


def _walk(dir_fd: int, prefix: tuple[str, ...], max_depth: int):
    if len(prefix) >= max_depth:
        raise UnsafeFile("/".join(prefix), "directory", f"nested deeper than {max_depth} folders")
    with os.scandir(dir_fd) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        try:
            info = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue  # removed while we walked
        parts = (*prefix, name)
        yield parts, info, dir_fd
        if stat.S_ISDIR(info.st_mode):
            inner = open_dir(name, dir_fd)
            try:
                yield from _walk(inner, parts, max_depth)
            finally:
                os.close(inner)
