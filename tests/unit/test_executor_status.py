"""How the Docker and Kubernetes executors read a run's end and utilization from what the engine returns."""

from types import SimpleNamespace as NS

from scheduler.executors.base import ExitStatus
from scheduler.executors.docker_state import cpu_util, epoch, status_from_state, working_set
from scheduler.executors.k8s_status import container_started, disruption, exit_code, exit_status, job_verdict, taken_away


def test_a_container_state_gives_exit_code_oom_and_the_engines_error():
    assert status_from_state({"ExitCode": 0}) == ExitStatus(0)
    assert status_from_state({"ExitCode": 137, "OOMKilled": True}) == ExitStatus(137, "OOMKilled")
    assert status_from_state({"ExitCode": 3}) == ExitStatus(3, "exit code 3")
    assert status_from_state({"ExitCode": 127, "Error": "no such file"}) == ExitStatus(127, "exit code 127: no such file")


def test_a_container_killed_by_someone_else_is_preempted_and_one_costwise_stopped_is_not():
    for code in (137, 143):  # SIGKILL (docker kill), SIGTERM (docker stop, a host shutting down)
        status = status_from_state({"ExitCode": code})
        assert status.is_preempted and status == ExitStatus.preempted(f"killed from outside (exit code {code})", code)
        assert status_from_state({"ExitCode": code}, stopped_here=True) == ExitStatus(code, f"exit code {code}")
    assert status_from_state({"ExitCode": 137, "OOMKilled": True}) == ExitStatus(137, "OOMKilled")  # its own fault
    assert not status_from_state({"ExitCode": 1}).is_preempted and not status_from_state({"ExitCode": 0}).is_preempted
    assert not status_from_state({"ExitCode": 137, "Error": "cannot start"}).is_preempted


def test_container_stats_give_cpu_share_of_the_shape_and_working_set():
    started = epoch("2024-05-01T10:00:00.000000000Z")
    stats = {"read": "2024-05-01T10:00:10Z", "cpu_stats": {"cpu_usage": {"total_usage": 10 * 10**9}},
             "memory_stats": {"usage": 500, "stats": {"inactive_file": 100}}}
    assert cpu_util(stats, started, vcpus=2) == 0.5
    assert cpu_util(stats, started, vcpus=0.5) == 1.0  # capped at the shape
    assert cpu_util(stats, None, vcpus=2) is None  # never started
    assert cpu_util({**stats, "read": "0001-01-01T00:00:00Z"}, started, vcpus=2) is None
    assert working_set(stats) == 400
    assert working_set({"memory_stats": {}}) is None


def pod(state: dict) -> dict:
    return {"status": {"container_statuses": [{"name": "run", "state": state}]}}


def test_a_jobs_conditions_and_its_pods_state_give_the_runs_end():
    running = NS(status=NS(conditions=[NS(type="Complete", status="False", reason=None)]))
    failed = NS(status=NS(conditions=[NS(type="Failed", status="True", reason="BackoffLimitExceeded")]))
    assert job_verdict(running) is None and job_verdict(NS(status=None)) is None
    assert exit_code(pod({"terminated": {"exit_code": 4}})) == 4 and exit_code(None) is None
    assert exit_status(job_verdict(failed), pod({"terminated": {"exit_code": 4}})) == ExitStatus(4, "BackoffLimitExceeded: exit code 4")
    assert exit_status(job_verdict(failed), pod({"terminated": {"exit_code": 137, "reason": "OOMKilled"}})) == ExitStatus(137, "OOMKilled")
    assert exit_status(job_verdict(failed), None) == ExitStatus(1, "BackoffLimitExceeded")
    assert exit_status(("Complete", None), None) == ExitStatus(0)
    assert container_started(pod({"running": {"started_at": "2024-05-01T10:00:00Z"}})) and not container_started(pod({"waiting": {}}))


def taken(name: str, conditions=(), reason=None, state=None) -> dict:
    status = {"conditions": list(conditions), "reason": reason,
              "container_statuses": [{"name": "run", "state": state or {"running": {}}}]}
    return {"metadata": {"name": name}, "status": status}


def test_a_disrupted_evicted_or_node_lost_pod_is_taken_away_and_a_failed_one_is_not():
    disrupted = taken("p1", [{"type": "Ready", "status": "False", "reason": None},
                             {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}])
    assert disruption(disrupted) == "disrupted: PreemptionByScheduler"
    assert disruption(taken("p1", [{"type": "DisruptionTarget", "status": "False", "reason": "x"}])) is None
    assert disruption(taken("p1", reason="Evicted")) == "Evicted" and disruption(taken("p1", reason="NodeLost")) == "NodeLost"
    assert disruption(taken("p1", reason="DeadlineExceeded")) is None and disruption(None) is None
    # while the Job is active: any of its pods taken away, or a pod seen before that is gone
    assert taken_away([taken("p0"), disrupted], {"p0"}) == "pod p1 disrupted: PreemptionByScheduler"
    assert taken_away([taken("p1")], {"p0", "p1"}) == "pod p0 deleted while its Job was active (node gone)"
    assert taken_away([taken("p1")], {"p1"}) is None and taken_away([], set()) is None
    # once the Job failed: a pod taken away is a preemption, its own failure is not
    failed = ("Failed", "BackoffLimitExceeded")
    killed = {"terminated": {"exit_code": 137, "reason": "Error"}}
    by_taint = taken("p1", [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}], state=killed)
    assert exit_status(failed, by_taint) == ExitStatus.preempted("pod disrupted: DeletionByTaintManager", 137)
    assert exit_status(failed, taken("p1", reason="Evicted")) == ExitStatus.preempted("pod Evicted", 1)
    assert not exit_status(failed, taken("p1", state=killed)).is_preempted
    oom = {"terminated": {"exit_code": 137, "reason": "OOMKilled"}}
    assert exit_status(failed, taken("p1", reason="Evicted", state=oom)) == ExitStatus(137, "OOMKilled")
