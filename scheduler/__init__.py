"""costwise: a cost-aware scheduler for ML training and batch jobs.

Layers, imports flowing one way (tests/unit/test_architecture.py checks it):
``core`` (pure: specs, placement, costs, cache keys, pipelines) <- ``store`` / ``executors`` <-
``runtime`` / ``reporting`` <- ``daemon`` / ``cli``. Nothing here imports ``pulumi`` or ``provider``.
"""

__version__ = "0.1.0"
