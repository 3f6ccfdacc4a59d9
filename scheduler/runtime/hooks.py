"""Lifecycle hooks: on success / failure / timeout, start a job or a pipeline, or POST a webhook."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from typing import Any

from ..core.runs import CANCELED, FAILED, SUCCEEDED, TIMED_OUT

log = logging.getLogger("costwise.hooks")
WHICH = {SUCCEEDED: "on_success", FAILED: "on_failure", TIMED_OUT: "on_timeout", CANCELED: "on_failure"}


class HookRunner:
    """Acts on the hooks of a job or pipeline once its run has finished (called exactly once per run)."""

    def __init__(self, engine, post=None):
        self.engine = engine
        self.post = post or post_json

    def fire(self, hooks, state: str, payload: dict[str, Any], source: str) -> list[str]:
        """Start what the hooks name; returns the ids of the runs queued."""
        started = []
        for hook in getattr(hooks, WHICH.get(state, ""), []) if state in WHICH else []:
            try:
                if hook.job:
                    run = self.engine.submit(hook.job, message=f"started by hook of {source}", extra={"trigger": f"hook:{source}"})
                    started.append(run.id)
                elif hook.pipeline:
                    from .pipeline_runner import PipelineRunner

                    prun = PipelineRunner(self.engine).submit(hook.pipeline, trigger=f"hook:{source}")
                    started.append(prun["id"])
                elif hook.webhook:
                    threading.Thread(target=self.post, args=(hook.webhook, payload), daemon=True).start()
            except Exception:  # a broken hook must not break the run that triggered it
                log.exception("hook of %s failed", source)
        return started


def post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> int | None:
    request = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except Exception as exc:  # noqa: BLE001 - a webhook that is down is logged, not fatal
        log.warning("webhook %s failed: %s", url, exc)
        return None
