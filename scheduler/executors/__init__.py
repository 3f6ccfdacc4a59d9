"""Executors: where a run's processes actually live. See ``base.Executor`` for the protocol."""

from .base import ExitStatus, Executor, LaunchSpec, Usage

__all__ = ["Executor", "ExitStatus", "LaunchSpec", "Usage", "make_executor"]


def make_executor(backend: str) -> Executor:
    """The executor for a backend, imported only when first needed (docker / kubernetes are heavy)."""
    if backend == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if backend == "docker":
        from .docker import DockerExecutor

        return DockerExecutor()
    if backend == "kubernetes":
        from .kubernetes import KubernetesExecutor

        return KubernetesExecutor()
    raise ValueError(f"backend={backend!r} is not one of local, docker, kubernetes")
