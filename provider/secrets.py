"""Secret env values given to the provider: sealed into 0600 files, the catalog keeps `file:` references.

A value arrives in plain text (the engine strips Pulumi's secret wrapper before it calls a dynamic
provider). `check` seals it at once, so neither the catalog, the Pulumi state, the provider's outputs
nor a check failure ever carries it. A sealed file is named by a keyed hash (HMAC-SHA256 with a key
kept beside the files, outside the catalog) of the value: a changed value gives a changed reference,
which `diff` reports, while the reference reveals nothing a dictionary attack could use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as _random
import shutil
from pathlib import Path

from scheduler.store.settings import Settings

REFERENCE_SCHEMES = ("env:", "file:")
KEY_FILE = ".key"


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REFERENCE_SCHEMES)


def secrets_root(settings: Settings) -> Path:
    return settings.home / "secrets"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _key(root: Path) -> bytes:
    path = _private_dir(root) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(_random.token_bytes(32))
    return path.read_bytes()


def _write_private(path: Path, value: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.incoming")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.replace(tmp, path)


def seal(settings: Settings, kind: str, owner: str, env_name: str, value: str) -> str:
    """Store one secret value privately; return the `file:` reference that replaces it."""
    root = secrets_root(settings)
    tag = hmac.new(_key(root), f"{env_name}\0{value}".encode(), hashlib.sha256).hexdigest()[:24]
    folder = _private_dir(root / kind.lower() / owner)
    path = folder / f"{env_name}-{tag}"
    if not path.exists():
        _write_private(path, value)
    return f"file:{path}"


def forget(settings: Settings, kind: str, owner: str) -> None:
    """Remove the sealed values of a deleted job (or pipeline)."""
    shutil.rmtree(secrets_root(settings) / kind.lower() / owner, ignore_errors=True)


def missing_sealed(settings: Settings, refs: dict[str, str]) -> list[str]:
    """Names whose sealed file (under this home's secrets folder) has disappeared."""
    root = str(secrets_root(settings)) + os.sep
    return sorted(
        name for name, ref in refs.items()
        if ref.startswith("file:" + root) and not Path(ref[len("file:"):]).is_file()
    )
