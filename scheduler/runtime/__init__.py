"""Running jobs: the engine (dispatch, supervision, finishing), launching, results, hooks, the pipeline
runner and the application context that wires settings, store and engine together."""
