"""What a CLI command (or the demo, or the daemon) works with: settings, store and engine, opened lazily."""

from __future__ import annotations

from functools import cached_property

from .clock import SystemClock
from .settings import Settings


class AppContext:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.clock = SystemClock()

    @cached_property
    def store(self):
        from .store import Store

        self.settings.home.mkdir(parents=True, exist_ok=True)
        return Store.open(self.settings.db_url, self.clock)

    @cached_property
    def engine(self):
        from .engine import Engine

        return Engine(self.settings, self.store, self.clock)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
