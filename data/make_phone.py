"""Write data/phone_price.csv: a SYNTHETIC stand-in for the Mobile Price Classification table.

Same 21 columns, value ranges and class balance (2,000 rows, price_range 0-3, 500 each) as the real
Kaggle table, so the shipped configs run on a fresh clone. The label is a noisy linear function of ram,
battery_power, px_height and px_width, as it mostly is in the real table. It is not the real data: the
figures in the README come from the real table at ../shared/data/phone_price.csv.

    python data/make_phone.py            # rewrites data/phone_price.csv (seed 0, deterministic)
"""

import csv
from pathlib import Path

import numpy as np

COLUMNS = [
    "battery_power",
    "blue",
    "clock_speed",
    "dual_sim",
    "fc",
    "four_g",
    "int_memory",
    "m_dep",
    "mobile_wt",
    "n_cores",
    "pc",
    "px_height",
    "px_width",
    "ram",
    "sc_h",
    "sc_w",
    "talk_time",
    "three_g",
    "touch_screen",
    "wifi",
    "price_range",
]


def make(n: int = 2000, seed: int = 0) -> list[list]:
    rng = np.random.default_rng(seed)
    battery = rng.integers(501, 1999, n)
    px_w = rng.integers(500, 1999, n)
    px_h = np.minimum(rng.integers(0, 1961, n), px_w - 1)
    ram = rng.integers(256, 3999, n)
    four_g = rng.integers(0, 2, n)
    three_g = np.where(four_g == 1, 1, rng.random(n) < 0.5).astype(int)
    pc = rng.integers(0, 21, n)
    fc = np.minimum(rng.integers(0, 20, n), pc)
    sc_h = rng.integers(5, 20, n)
    sc_w = np.minimum(rng.integers(0, 19, n), sc_h)
    score = (ram - 2124) / 1085 * 3.0 + (battery - 1250) / 430 * 0.35 + (px_h + px_w - 2150) / 560 * 0.35
    score += rng.normal(0, 0.12, n)
    label = np.empty(n, dtype=int)
    label[np.argsort(score, kind="stable")] = np.repeat(np.arange(4), n // 4)
    cols = [
        battery,
        rng.integers(0, 2, n),
        rng.integers(5, 31, n) / 10,
        rng.integers(0, 2, n),
        fc,
        four_g,
        rng.integers(2, 65, n),
        rng.integers(1, 11, n) / 10,
        rng.integers(80, 201, n),
        rng.integers(1, 9, n),
        pc,
        px_h,
        px_w,
        ram,
        sc_h,
        sc_w,
        rng.integers(2, 21, n),
        three_g,
        rng.integers(0, 2, n),
        rng.integers(0, 2, n),
        label,
    ]
    return [[c[i].item() for c in cols] for i in range(n)]


if __name__ == "__main__":
    out = Path(__file__).with_name("phone_price.csv")
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(make())
    print(f"wrote {out}")
