"""prepare: one-hot encode sex, shuffle, and split abalone.csv into train.csv and test.csv."""
import csv
import os
import random
import sys
from pathlib import Path

out = Path(os.environ["COSTWISE_OUTPUT_DIR"])
test_share = float(sys.argv[1]) if len(sys.argv) > 1 else 0.2
with open("abalone.csv") as handle:
    rows = list(csv.DictReader(handle))
random.Random(42).shuffle(rows)
header = ["sex_M", "sex_F", "sex_I", "length", "diameter", "height", "whole_weight", "shucked_weight",
          "viscera_weight", "shell_weight", "rings"]
encoded = [[int(r["sex"] == s) for s in "MFI"] + [r[c] for c in header[3:]] for r in rows]
cut = int(len(encoded) * (1 - test_share))
for name, part in (("train.csv", encoded[:cut]), ("test.csv", encoded[cut:])):
    with open(out / name, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(part)
print(f"train {cut} rows, test {len(encoded) - cut} rows")
