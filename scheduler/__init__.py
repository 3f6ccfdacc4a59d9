"""costwise: a cost-aware scheduler for ML training and batch jobs.

The pure core (specs, placement, costs, cache keys) lives beside thin shells
(store, executors, engine, CLI). Nothing here imports ``pulumi`` or ``provider``.
"""

__version__ = "0.1.0"
