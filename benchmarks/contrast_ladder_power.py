"""Power of the old converging-ladder statistic (issue 17, session 10; figures in
``benchmarks/CRITERIA_s10_i17.md``): the fixture ``converging_z`` of ``tests/test_anchor.py``
(12 two-group ladders whose gap fades, 20 held-out observed gaps each) rerun on seed sets
``rep -> rep + 12 s`` (set 0 is the fixture); per ladder the |z| of the gaps under the default
band, ``DRIFT_DECAY``, ``RELATIVE_DRIFT`` and the oracle band (the true mean and sd of the
observed gap, 4000 simulated slices). Run from the repository root:
``PYTHONPATH=. nice -n 19 python benchmarks/contrast_ladder_power.py SETS``, then ``--summary``.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, "tests")
import test_anchor as T

from bayes_scaling.query import anchor
from bayes_scaling.query.contrast import contrast_groups

OUT = Path(".fits/s10_power.pkl")
CANDS = {"zero": (False, False), "decay": (True, False), "rel": (False, True)}


def run(sets: int) -> None:
    rows = pickle.loads(OUT.read_bytes()) if OUT.exists() else {}
    t0 = time.time()
    for rep in range(12 * sets):
        if rep in rows:
            continue
        rng = np.random.default_rng(100 + rep)
        gap0 = rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.2)
        gap_inf = rng.normal(0.0, 0.01)
        runs, gap, budgets = T.isoflop_ladder(gap0, gap_inf, seed=rep)
        fit = T.point_fake_fit(runs, rep)
        c_star = 4.0 * budgets[-1]
        observed = T.held_out_gaps(c_star, gap, seed=1000 + rep)
        ref = T.held_out_gaps(c_star, gap, seed=500000 + rep, n=4000)
        rec = {"oracle": np.abs((observed - ref.mean()) / ref.std()), "true_sd": ref.std()}
        for name, (dec, rel) in CANDS.items():
            anchor.DRIFT_DECAY, anchor.RELATIVE_DRIFT = dec, rel
            anchor._CACHE.clear()
            res = contrast_groups(fit, "A", "B", flops=c_star, random_seed=rep, weighting="zero")
            d = np.asarray(res.draws["difference_predictive"]).ravel()
            rec[name] = np.abs((observed - d.mean()) / d.std())
            rec[name + "_sd"] = d.std()
            rec[name + "_brier"] = np.mean((np.mean(d < 0) - (observed < 0)) ** 2)
        anchor.DRIFT_DECAY = anchor.RELATIVE_DRIFT = False
        rows[rep] = rec
        if rep % 12 == 11:
            OUT.write_bytes(pickle.dumps(rows))
            print(rep, "%.0f s" % (time.time() - t0), flush=True)
    OUT.write_bytes(pickle.dumps(rows))


def summary() -> None:
    """Per seed set of 12 ladders: the median |z| of each band, its spread, the pass rate of
    the test's bounds (0.3-2), and the oracle's with its spread scaled (a planted fault)."""
    rows = pickle.loads(OUT.read_bytes())
    n_sets = len(rows) // 12

    def stat(name: str, s: int, scale: float = 1.0) -> float:
        return float(np.median(np.concatenate([rows[r][name] for r in range(12 * s, 12 * s + 12)])
                               * scale))

    print("ladders", len(rows), "seed sets", n_sets)
    for name in ("zero", "decay", "rel", "oracle"):
        m = np.array([stat(name, s) for s in range(n_sets)])
        print(f"{name:7s} median|z| per set: mean {m.mean():.3f} sd {m.std(ddof=1):.3f} "
              f"min {m.min():.3f} max {m.max():.3f} pass {np.mean((m > 0.3) & (m < 2)):.2f} "
              f"per set {np.round(m, 3)}")
    for name in ("decay", "rel"):
        d = np.array([stat(name, s) - stat("zero", s) for s in range(n_sets)])
        print(f"{name} - zero: mean {d.mean():+.3f} sd {d.std(ddof=1):.3f}")
    for f in (1.5, 2.0, 2.5, 3.0, 0.5, 1 / 3):
        m = np.array([stat("oracle", s, 1 / f) for s in range(n_sets)])
        print(f"oracle band {f:.2f}x wide: median|z| mean {m.mean():.3f} "
              f"pass {np.mean((m > 0.3) & (m < 2)):.2f}")
    keys = sorted(rows)
    r = np.array([rows[k]["zero_sd"] / rows[k]["true_sd"] for k in keys])
    lo, hi = np.quantile(r, [0.1, 0.9])
    print(f"zero band sd / true sd: median {np.median(r):.2f}, 10-90% {lo:.2f}-{hi:.2f}")
    for name in ("decay", "rel"):
        r = np.array([rows[k][f"{name}_sd"] / rows[k]["zero_sd"] for k in keys])
        print(f"{name} / zero band sd: median {np.median(r):.2f}")


if __name__ == "__main__":
    if "--summary" in sys.argv:
        summary()
    else:
        run(int(sys.argv[1]))
