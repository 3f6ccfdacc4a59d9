"""Where costwise keeps things: COSTWISE_HOME and COSTWISE_DB, resolved once and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None, db: str | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("COSTWISE_HOME") or Path.home() / ".costwise")
        home_path = home_path.expanduser().resolve()
        url = db or os.environ.get("COSTWISE_DB") or f"sqlite:///{home_path / 'catalog.db'}"
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
