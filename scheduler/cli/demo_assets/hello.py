"""A tiny job: says hello and leaves a file in its artifacts directory."""
import os
import pathlib

run_id = os.environ["COSTWISE_RUN_ID"]
print(f"hello from {run_id} on shape {os.environ['COSTWISE_SHAPE']}")
pathlib.Path(os.environ["COSTWISE_ARTIFACTS_DIR"], "greeting.txt").write_text(f"hello from {run_id}\n")
