"""How the Docker and Kubernetes executors read a run's end and utilization from what the engine returns."""

from types import SimpleNamespace as NS

from scheduler.executors.base import ExitStatus
from scheduler.executors.docker_state import cpu_util, epoch, status_from_state, working_set
from scheduler.executors.k8s_status import container_started, exit_code, exit_status, job_verdict


def test_a_container_state_gives_exit_code_oom_and_the_engines_error():
    assert status_from_state({"ExitCode": 0}) == ExitStatus(0)
    assert status_from_state({"ExitCode": 137, "OOMKilled": True}) == ExitStatus(137, "OOMKilled")
    assert status_from_state({"ExitCode": 3}) == ExitStatus(3, "exit code 3")
    assert status_from_state({"ExitCode": 127, "Error": "no such file"}) == ExitStatus(127, "exit code 127: no such file")


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
