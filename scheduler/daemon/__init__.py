"""The long-running daemon: the dispatch loop, APScheduler schedules and the HTTP API."""
