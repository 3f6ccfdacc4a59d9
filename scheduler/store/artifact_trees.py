"""Artifact trees, read without trusting them: hashed and copied member by member through folder
descriptors; a special file, or a link that leaves the tree, is refused (safefs.UnsafeFile)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator

from . import safefs


def file_sha256(path: Path) -> str:
    """sha256 of a regular file (a link or a special file is refused, not opened)."""
    return safefs.sha256_fd(safefs.open_regular(str(path)))[0]


def tree_members(root: Path) -> Iterator[tuple[str, os.stat_result, int]]:
    """(relative path, lstat, folder descriptor) of each file and link of a tree, in sorted
    order, __pycache__ left out; UnsafeFile for a special file or a link that leaves the tree."""
    top = os.path.realpath(root)
    fd = safefs.open_dir(root)
    try:
        for parts, info, dir_fd in safefs.walk(fd):
            if "__pycache__" in parts or stat.S_ISDIR(info.st_mode):
                continue
            rel = "/".join(parts)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(parts[-1], dir_fd=dir_fd)
                real = os.path.realpath(os.path.join(root, rel))
                if os.path.isabs(target) or os.path.commonpath([top, real]) != top:
                    raise safefs.UnsafeFile(rel, "symlink", f"a symlink to {target}, outside the artifact")
            elif not stat.S_ISREG(info.st_mode):
                raise safefs.UnsafeFile(rel, safefs.kind_of(info.st_mode))
            yield rel, info, dir_fd
    finally:
        os.close(fd)


def _line(rel: str, info: os.stat_result, body: str) -> bytes:
    """One member's line in a tree hash: a file's mode and sha256, or a link's target."""
    if stat.S_ISLNK(info.st_mode):
        return f"{rel}\0L\0{body}\n".encode()
    mode = "x" if info.st_mode & 0o111 else "-"
    return f"{rel}\0{mode}\0{body}\n".encode()


def tree_sha256(root: Path) -> str:
    """Hash of a folder: relative paths, executable bits and file contents (links: their
    targets), in sorted order."""
    digest = hashlib.sha256()
    for rel, info, dir_fd in tree_members(root):
        name = rel.rsplit("/", 1)[-1]
        if stat.S_ISLNK(info.st_mode):
            body = os.readlink(name, dir_fd=dir_fd)
        else:
            body = safefs.sha256_fd(safefs.open_regular(name, dir_fd))[0]
        digest.update(_line(rel, info, body))
    return digest.hexdigest()


def copy_tree(source: Path, dest: Path, writable: bool = False, sync: bool = True) -> str:
    """Copy a tree into a new folder ``dest`` (links as links), hashing what is copied while it
    is copied; returns the tree hash of the copy (as tree_sha256 would compute it). ``sync``: each
    file is synced before it is renamed into place."""
    digest = hashlib.sha256()
    dest.mkdir()
    out_root = safefs.open_dir(dest)
    folders: dict[str, int] = {"": out_root}
    try:
        for rel, info, dir_fd in tree_members(source):
            parent, _, name = rel.rpartition("/")
            out = _folder(folders, parent)
            if stat.S_ISLNK(info.st_mode):
                body = os.readlink(name, dir_fd=dir_fd)
                os.symlink(body, name, dir_fd=out)
            else:
                mode = stat.S_IMODE(info.st_mode) | (stat.S_IWUSR if writable else 0)
                with os.fdopen(safefs.open_regular(name, dir_fd), "rb") as src, \
                        safefs.atomic_create(out, name, mode, sync) as copy:
                    body, _ = safefs.copy_hashing(src, copy)
                os.chmod(name, mode, dir_fd=out)  # the umask narrowed it at creation
            digest.update(_line(rel, info, body))
    finally:
        for fd in folders.values():
            os.close(fd)
    return digest.hexdigest()


def _folder(folders: dict[str, int], rel: str) -> int:
    """The descriptor of a folder of the copy, made (with its parents) on first use."""
    if rel in folders:
        return folders[rel]
    parent, _, name = rel.rpartition("/")
    above = _folder(folders, parent)
    os.mkdir(name, 0o755, dir_fd=above)
    folders[rel] = safefs.open_dir(name, above)
    return folders[rel]
