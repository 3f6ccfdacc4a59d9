"""What a CLI command (or the demo, or the daemon) works with: settings, store and engine, opened lazily."""

from __future__ import annotations

from functools import cached_property

from ..core.clock import SystemClock
from ..store.settings import Settings


class AppContext:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.clock = SystemClock()

    @cached_property
    def store(self):
        from ..store.store import Store

        return Store.open_home(self.settings, self.clock)

    @cached_property
    def engine(self):
        from .engine import Engine

        return Engine(self.settings, self.store, self.clock)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
