"""The pure core: specs, errors, durations, costs, budgets, placement, cache keys, pipelines, sweeps, run
states and prices. No I/O: no database, processes, network or files; the clock is passed in."""
