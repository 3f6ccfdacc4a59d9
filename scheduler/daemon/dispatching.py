"""The daemon's dispatch thread: rounds that place and claim queued runs, and the supervisor thread of
each run it launches (or adopts). A mixin of ``Daemon`` (loop.py), which owns the store, the engine,
the wake event and the set of runs supervised here."""

from __future__ import annotations

import logging
import threading

from ..core.daemon_round import Triage, triage
from ..core.runs import LIVE_STATES, RunRecord
from ..runtime import dispatch

log = logging.getLogger("costwise.daemon")
DISPATCH_BATCH = 200  # oldest queued runs looked at per dispatch round
# a round starts at least this long after the last one that launched ended: fires and finishes close
# together (most come during a round) are dispatched for in one round, as a fixed 20 ms debounce did,
# while the first wake after a quiet spell (a submit to an idle daemon) is dispatched for at once
ROUND_GAP_S = 0.02


class Dispatching:
    _lock: threading.Lock
    _supervised: set[str]

    def _dispatch_loop(self) -> None:
        last_round = float("-inf")
        while not self.stopping.is_set():
            self.clock.wait(self.wake, self.poll_s)
            gap = last_round + ROUND_GAP_S - self.clock.monotonic()
            if gap > 0:
                self.clock.sleep(gap)
            self.wake.clear()
            if self.stopping.is_set():
                return
            try:
                launched = self.dispatch_once()
            except Exception:  # noqa: BLE001 - keep dispatching; the next round retries
                log.exception("dispatch round failed")
                launched = 1
            # only a round that launched is followed by the gap: one that found nothing to start (an end
            # with nothing queued) leaves the next submit, often a pipeline's next step, dispatched at once
            last_round = self.clock.monotonic() if launched else float("-inf")

    def dispatch_once(self) -> int:
        """Start what can start now; returns how many runs were launched. The round places every run
        it can on one snapshot, then writes all its claims in one transaction (dispatch.claim_all)."""
        for prun in self.store.pipeline_runs.list(state="QUEUED", limit=100):
            self._start_pipeline(prun["id"], resume=False)
        if not self.store.any_queued():
            return 0
        round = self.engine.new_round()
        if not round.has_room():
            return 0  # every slot is taken: nothing queued could start now
        claims = []
        for run in self.store.queued_oldest_first(limit=DISPATCH_BATCH):
            step = triage(round, run, self.stopping.is_set())
            if step is Triage.STOP:
                break
            if step is Triage.CANCEL:
                self.engine.cancel(run.id, wait=False)
                continue
            # reserved before the claim: reconcile never takes a run this thread is about to launch
            if step is Triage.SKIP or not self._reserve(run.id):
                continue
            held_before = (run.placement or {}).get("reason")
            outcome = dispatch.decide(self.engine, run, round)
            if isinstance(outcome, dispatch.Claim):
                claims.append(outcome)
                continue
            if outcome is not None:  # refused (a budget that refuses, nothing that fits): it ended unlaunched
                log_run("refuse", outcome, outcome.reason)
            elif _gist((run.placement or {}).get("reason")) != _gist(held_before):  # decide notes a new wait on run
                log_run("wait", run, run.placement.get("reason"))
            self._release(run.id)
        return self._launch_claimed(claims)

    def _launch_claimed(self, claims: list) -> int:
        """Claim in one transaction, launch what was claimed (RUNNING written in one more), supervise each."""
        started = {run.id: run for run in dispatch.claim_all(self.engine, claims)}
        for claim in claims:
            if claim.run.id not in started:  # another claimer took the slot, or it left QUEUED: the next round sees
                self._release(claim.run.id)
                self.wake.set()
        for claim in claims:
            if claim.run.id in started:
                log_run("dispatch", claim.run, (claim.run.placement or {}).get("reason"))
                self._supervise(claim.run, launch=True, reserved=True, job=claim.job)
        return len(started)

    def _release(self, run_id: str) -> None:
        with self._lock:
            self._supervised.discard(run_id)

    def _reserve(self, run_id: str) -> bool:
        """Mark a run as supervised here; False if it already is."""
        with self._lock:
            if run_id in self._supervised:
                return False
            self._supervised.add(run_id)
            return True

    def _supervise(self, run: RunRecord, launch: bool = False, reserved: bool = False, job=None) -> None:
        """Watch a run in a thread of its own (launching it there first when asked). A thread that
        dies is logged; the next reconcile finds the run unsupervised and supervises it again."""
        if not reserved and not self._reserve(run.id):
            return

        def watch():
            try:
                current = self.engine.launch(run.id, run, job) if launch else run
                self.changes.notify()
                if current.state in LIVE_STATES:
                    current = self.engine.supervise(current, job=job)
                if current.finished:
                    log_run("end", current, current.reason or f"exit code {current.exit_code}")
            except Exception:  # noqa: BLE001
                log.exception("supervising %s failed", run.id)
            finally:
                self._release(run.id)
                self.wake.set()

        self.workers.submit(watch, f"run-{run.id}")


def log_run(event: str, run: RunRecord, reason: str | None) -> None:
    """One INFO line per dispatch, wait (when its reason changes), refusal and end, greppable by key."""
    log.info("%s run=%s job=%s state=%s shape=%s market=%s reason=%s", event, run.id, run.job, run.state,
             run.shape or "-", run.market or "-", reason or "-")


def _gist(reason: str | None) -> str | None:
    """What a wait is, without its figures ("held by budget 'ml'" of "held by budget 'ml': $0.4 spent..."):
    a hold whose amounts move every round is logged once, a new kind of wait again."""
    return reason.split(":", 1)[0] if reason else reason
