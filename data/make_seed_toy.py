"""Write data/seed_toy.csv: 300 SYNTHETIC rows, 3 features, a binary label, for the teaching model.

The label is 1 when a noisy linear score x1 + 0.5*x2 - 0.8*x3 is positive. Seeded, deterministic.

    python data/make_seed_toy.py
"""

import csv
from pathlib import Path

import numpy as np

if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    label = (x @ np.array([1.0, 0.5, -0.8]) + rng.normal(0, 0.3, 300) > 0).astype(int)
    out = Path(__file__).with_name("seed_toy.csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "x2", "x3", "label"])
        w.writerows(
            [[round(float(a), 4), round(float(b), 4), round(float(c), 4), int(lab)] for (a, b, c), lab in zip(x, label)]
        )
    print(f"wrote {out}")
