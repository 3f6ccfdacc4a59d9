"""GPU utilization through NVML (nvidia-ml-py). No GPU, or no driver, is "no GPU", never an error."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class GpuProbe:
    def __init__(self):
        self._lock = threading.Lock()
        self._handles: list | None = None

    def _init(self) -> list:
        if self._handles is None:
            try:
                import pynvml
            except ImportError:  # no costwise[gpu]: sampling stays off, as it does on a host without a GPU
                log.info("GPU utilization is not sampled: nvidia-ml-py is not installed (pip install 'costwise[gpu]')")
                self._handles = []
                return self._handles
            try:
                pynvml.nvmlInit()
                count = pynvml.nvmlDeviceGetCount()
                self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except Exception:  # NVMLError (driver library not found, no device)
                self._handles = []
        return self._handles

    def available(self) -> bool:
        with self._lock:
            return bool(self._init())

    def utilization(self) -> float | None:
        """Mean busy share of all GPUs right now (0..1), or None without a GPU."""
        with self._lock:
            handles = self._init()
            if not handles:
                return None
            import pynvml

            try:
                rates = [pynvml.nvmlDeviceGetUtilizationRates(h).gpu for h in handles]
            except Exception:
                return None
        return sum(rates) / (100.0 * len(rates))


@dataclass
class GpuSamples:
    """A run's GPU utilization readings; their mean is the run's gpu_util_avg."""

    values: list[float] = field(default_factory=list)

    def take(self, probe: GpuProbe) -> None:
        util = probe.utilization()
        if util is not None:
            self.values.append(util)

    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


GPU = GpuProbe()
