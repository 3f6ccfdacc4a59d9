"""GPU utilization readings: a machine without a GPU reads as "no GPU", never as 0 % or an error."""

from scheduler.executors.gpu import GpuProbe, GpuSamples


class Readings:
    def __init__(self, *values):
        self.values = list(values)

    def utilization(self):
        return self.values.pop(0)


def test_a_runs_gpu_average_is_the_mean_of_the_readings_it_got():
    samples = GpuSamples()
    probe = Readings(0.5, None, 1.0)
    for _ in range(3):
        samples.take(probe)
    assert samples.values == [0.5, 1.0]
    assert samples.mean() == 0.75


def test_no_reading_is_no_gpu_average():
    assert GpuSamples().mean() is None


def test_the_probe_on_this_machine_answers_without_raising():
    probe = GpuProbe()
    util = probe.utilization()
    assert (util is None) == (not probe.available())
    assert util is None or 0.0 <= util <= 1.0
