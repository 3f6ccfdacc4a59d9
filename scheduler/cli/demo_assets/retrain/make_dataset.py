"""Generates prepare/abalone.csv: a synthetic data set shaped like UCI Abalone (sex, seven size and
weight measurements, rings). Synthetic, so it ships with no licence question; regenerate with
`python make_dataset.py` (seeded, so the bytes are the same every time)."""

import csv
import random
from pathlib import Path

rng = random.Random(20261122)
rows = []
for _ in range(1200):
    sex = rng.choice("MFI")
    age = max(1.0, rng.gauss(10, 3))
    length = max(0.08, 0.05 * age + rng.gauss(0.05, 0.04) - (0.05 if sex == "I" else 0))
    diameter = length * rng.uniform(0.75, 0.82)
    height = length * rng.uniform(0.3, 0.37)
    whole = 0.9 * length**3 * 10 * rng.uniform(0.8, 1.2)
    shucked = whole * rng.uniform(0.4, 0.48)
    viscera = whole * rng.uniform(0.2, 0.24)
    shell = whole * rng.uniform(0.27, 0.33)
    rings = max(1, round(1.5 + 0.85 * age + 6 * shell + rng.gauss(0, 1.9)))
    rows.append([sex] + [round(v, 4) for v in (length, diameter, height, whole, shucked, viscera, shell)] + [rings])

with open(Path(__file__).parent / "prepare" / "abalone.csv", "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight", "rings"])
    writer.writerows(rows)
