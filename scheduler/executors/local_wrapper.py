"""The small ``sh -c`` wrapper every local run starts through, so a run keeps its promises alone.

It is the run's session leader, and:
- moves the job into the run's cgroup (when there is one) in the forked child before exec'ing it,
  so nothing the job starts begins outside; the wrapper itself stays outside and outlives a kill;
- runs a watchdog beside the job: at the deadline it writes the ``timed_out`` marker next to the exit
  code file, SIGTERMs the job (its cgroup, else its process group), and SIGKILLs it after the grace.
  So a run whose supervisor is gone (a killed ``costwise run --wait``, a daemon down) still ends at
  its deadline, and whoever reads the run next sees it timed out, not failed;
- writes the job's exit code to a file (a restarted daemon reads it), stops the watchdog, kills what
  the job left in its cgroup, and exits with the job's code. The executor removes the cgroup (a
  ``rmdir`` exec per run costs more than the rest of the wrapper); the wrapper removes it itself only
  after its watchdog fired, when it is likely nobody else is watching.

Plain ``sh`` rather than Python: a run's launch costs a fork and an exec of ``sleep``, not an
interpreter start.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

TIMED_OUT_MARKER = "timed_out"

# The watchdog's trap names its sleep as $! (set by the fork itself): a trap can run between
# `sleep &` and any assignment after it, and a plain `wait` would then wait out the whole sleep.
# $0 exit-code file, $1 workdir, $2 seconds to the deadline, $3 stop grace, $4 cgroup ('' if none), $5... the job
SCRIPT = r'''cd "$1" || exit 127
left=$2 grace=$3 cg=$4
shift 4
stop() {
  if [ -z "$cg" ]; then kill -"$1" 0; return; fi
  if [ "$1" = TERM ]; then
    while read -r p; do kill -TERM "$p"; done < "$cg/cgroup.procs"
  elif [ -e "$cg/cgroup.kill" ]; then echo 1 > "$cg/cgroup.kill"
  else
    n=0
    while read -r p < "$cg/cgroup.procs" && [ $n -lt 100 ]; do
      echo FROZEN > "$cg/freezer.state"
      while read -r p; do kill -KILL "$p"; done < "$cg/cgroup.procs"
      echo THAWED > "$cg/freezer.state"; n=$((n+1))
    done
  fi
} 2>/dev/null
(
  trap 'kill -KILL $! 2>/dev/null; wait; exit 0' TERM USR1
  sleep "$left" &
  wait $! || exit 0
  : > "${0%/*}/timed_out"
  trap '' TERM
  stop TERM
  sleep "$grace" &
  wait $!
  stop KILL
) &
wd=$!
trap : TERM
( if [ -n "$cg" ]; then echo 0 > "$cg/cgroup.procs"; fi; exec "$@" )
rc=$?
echo "$rc" > "$0"
kill -USR1 $wd 2>/dev/null; wait $wd 2>/dev/null
if [ -n "$cg" ]; then
  if read -r p < "$cg/cgroup.procs"; then stop TERM; sleep 1; stop KILL; fi
  if [ -e "${0%/*}/timed_out" ]; then rmdir "$cg" 2>/dev/null; fi
fi
exit "$rc"'''

_FIXED_ARGS = 5  # exit file, workdir, seconds left, grace, cgroup


def argv(exit_file: Path, workdir: Path, seconds_left: float, grace_s: float, cgroup: Path | None,
         command: list[str]) -> list[str]:
    """The wrapper's command line for one run."""
    return ["/bin/sh", "-c", SCRIPT, str(exit_file), str(workdir), f"{max(seconds_left, 0.0):.3f}",
            f"{grace_s:.3f}", str(cgroup or ""), *command]


def parse(cmdline: list[str]) -> dict | None:
    """What a wrapper was started with (from its /proc cmdline), or None if it is not one of ours."""
    if len(cmdline) < 3 + _FIXED_ARGS or cmdline[1:3] != ["-c", SCRIPT]:
        return None
    exit_file, _workdir, _left, _grace, cgroup = cmdline[3:3 + _FIXED_ARGS]
    return {"exit_file": exit_file, "cgroup": cgroup or None}


def timed_out_marker(exit_file: str | Path) -> Path:
    return Path(exit_file).with_name(TIMED_OUT_MARKER)


def kill_leftovers(exit_file: str | Path, pgid: int) -> list[int]:
    """End what is left of a dead wrapper's process group: its watchdog (a fork of the wrapper, so the
    same command line, outside the cgroup) sleeps until the deadline once the wrapper is SIGKILLed.

    Only a process whose command line is this run's wrapper (same exit file) in group `pgid`, and its
    children in that group (the watchdog's ``sleep``), is killed: never a process that merely reuses a
    pid. Returns the pids killed. Costs a scan of the process table: call it when the group is alive.
    """
    killed = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            args = parse(proc.info["cmdline"] or [])
            if args is None or args["exit_file"] != str(exit_file) or os.getpgid(proc.pid) != pgid:
                continue
            victims = [c for c in proc.children() if os.getpgid(c.pid) == pgid] + [proc]
            for victim in victims:
                victim.kill()
                killed.append(victim.pid)
        except (psutil.Error, OSError):  # ended meanwhile
            continue
    return killed
