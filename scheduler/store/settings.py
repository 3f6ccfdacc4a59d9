"""Where costwise keeps things: COSTWISE_HOME and COSTWISE_DB, resolved once and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SpecError

DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None, db: str | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("COSTWISE_HOME") or Path.home() / ".costwise")
        home_path = home_path.expanduser().resolve()
        if home_path.exists() and not home_path.is_dir():
            raise SpecError(f"--home {str(home_path)!r} is not a folder", "home", str(home_path))
        url = db or os.environ.get("COSTWISE_DB") or f"sqlite:///{home_path / 'catalog.db'}"
        check_db_url(url)
        return cls(home_path, url)

    @property
    def artifacts_root(self) -> Path:
        return self.home / "artifacts"

    @property
    def runs_root(self) -> Path:
        return self.home / "runs"

    @property
    def checkpoints_root(self) -> Path:
        return self.home / "checkpoints"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_root / run_id


def check_db_url(url: str) -> None:
    """SpecError unless ``url`` is a SQLite or PostgreSQL URL SQLAlchemy can parse (the value is
    shown only when it holds no credentials)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = repr(url) if "@" not in url else "(a URL with credentials)"
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise SpecError(
            f"--db {shown} is not a database URL (e.g. sqlite:////path/catalog.db or postgresql+psycopg://host/db)",
            "db", None,
        ) from None
    if backend not in DIALECTS:
        raise SpecError(f"--db {shown}: {backend!r} is not one of {', '.join(DIALECTS)}", "db", None)
