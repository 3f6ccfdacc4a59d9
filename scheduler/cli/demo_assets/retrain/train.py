"""train: linear regression of rings by gradient descent (numpy); writes model.pkl."""
import argparse
import os
import pickle
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=200)
parser.add_argument("--learning-rate", type=float, default=0.05)
args = parser.parse_args()

data = np.loadtxt(Path(os.environ["COSTWISE_INPUT_DIR"]) / "train.csv", delimiter=",", skiprows=1)
x, y = data[:, :-1], data[:, -1]
mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
xs = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
weights = np.zeros(xs.shape[1])
checkpoint = Path(os.environ["COSTWISE_CHECKPOINT_DIR"]) / "weights.npy"
for epoch in range(args.epochs):
    grad = xs.T @ (xs @ weights - y) / len(y)
    weights -= args.learning_rate * grad
    if epoch % 50 == 0:
        np.save(checkpoint, weights)
        print(f"epoch {epoch} mse {np.mean((xs @ weights - y) ** 2):.3f}", flush=True)
with open(Path(os.environ["COSTWISE_OUTPUT_DIR"]) / "model.pkl", "wb") as handle:
    pickle.dump({"weights": weights, "mean": mean, "std": std, "epochs": args.epochs,
                 "learning_rate": args.learning_rate}, handle)
