"""evaluate: mean squared error of the model on test.csv; writes metrics.json."""
import json
import os
import pickle
from pathlib import Path

import numpy as np

inputs = Path(os.environ["COSTWISE_INPUT_DIR"])
with open(inputs / "model.pkl", "rb") as handle:
    model = pickle.load(handle)
data = np.loadtxt(inputs / "test.csv", delimiter=",", skiprows=1)
x, y = data[:, :-1], data[:, -1]
xs = np.hstack([np.ones((len(x), 1)), (x - model["mean"]) / model["std"]])
mse = float(np.mean((xs @ model["weights"] - y) ** 2))
metrics = {"regression": {"mse": round(mse, 4), "rows": int(len(y))}}
(Path(os.environ["COSTWISE_OUTPUT_DIR"]) / "metrics.json").write_text(json.dumps(metrics))
print(json.dumps(metrics))
