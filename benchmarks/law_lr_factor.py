"""MAP + Laplace screen of an effective-rate factor per peak learning rate (Gemstones).

Session 13 of issue 16, round 3, criterion ``benchmarks/CRITERIA_s13_i16.md`` addendum 4. Both
Gemstones variants (base and half peak rate) in one fit of today's law, curve offsets one per
run; the half-rate rows' forward area is ``c x S1`` with ``log_c ~ Normal(0, 1)``
(``law_run_length.map_cell(shift=...)``). Rows: the candidate, and the joint fit without the
factor (``c = 1``: informational). Scored on today's held-out sets (``residual_candidates.tables``,
``--holdout-top 2``): gemhalf's 30 points and gem's 59, next to each variant's own fit.

Run: ``nice -n 19 python benchmarks/law_lr_factor.py`` (cached in
``results/residual_cache/law_lrf_*.json``); writes ``results/law_lr_factor.md``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_schedule import gemstones_wsd
from law_run_length import map_cell

from bayes_scaling.data.curves import load_curves

warnings.simplefilter("ignore")
HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "residual_cache"
OWN = {"gem": "law_diag_gem_default.json", "gemhalf": "law_diag_gemhalf_default.json"}


def joint_tables():
    """Training and held-out curves of both variants, split as ``residual_candidates.tables``."""
    base, half = gemstones_wsd("base"), gemstones_wsd("half")
    cut = np.sort(base["n_params"].unique())[-2] * 0.98
    df = pd.concat([base, half], ignore_index=True)
    train = load_curves(df[df["n_params"] < cut], warmup_fraction=0.0)
    test = load_curves(df[df["n_params"] >= cut], warmup_fraction=0.0, max_points_per_curve=None,
                       max_points=None)
    return train, test


def _half(t) -> np.ndarray:
    return t.frame["run_id"].astype(str).str.endswith(":half").to_numpy(float)


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    train, test = joint_tables()
    res: dict[str, dict[str, dict]] = {"own fit (today)": {
        s: json.loads((CACHE / f).read_text()) for s, f in OWN.items()}}
    for row, shift in (("joint, lr factor c (candidate)", (_half(train), _half(test))),
                       ("joint, c = 1", None)):
        path = CACHE / f"law_lrf_{'c1' if shift is None else 'c'}.json"
        if not path.exists():
            out = map_cell("dynamics_schedule", train, test, "none", "curve", signed=True,
                           shift=shift)
            path.write_text(json.dumps(out))
            print(row, {k: v for k, v in out.items() if not isinstance(v, list | dict)},
                  flush=True)
        out = json.loads(path.read_text())
        res[row] = {}
        for name, m in (("gem", _half(test) == 0), ("gemhalf", _half(test) == 1)):
            pct, i90, i50 = (np.asarray(out[k])[m] for k in ("test_pct", "in90", "in50"))
            res[row][name] = {"err": float(np.median(np.abs(pct))), "c90": float(i90.mean()),
                              "c50": float(i50.mean()), "points": int(m.sum()),
                              "log_c": out["log_c"]}
    lines = ["# An effective-rate factor per peak learning rate (Gemstones): MAP + Laplace screen",
             "", "`benchmarks/law_lr_factor.py` (session 13 round 3, `benchmarks/CRITERIA_s13_"
             "i16.md` addendum 4). Both variants fitted together; the half-rate rows' forward "
             "area is `c x S1`, `log_c ~ Normal(0, 1)` (Tissue et al. 2024's `S1 = sum lr` "
             "fixes `c = 0.5`). Held-out: the 3 largest models (`--holdout-top 2`), gem 59 "
             "points, gemhalf 30. Median abs % error / 90% / 50% coverage of the Laplace "
             "predictive bands; `c` at the MAP.", "",
             "| fit | gem | gemhalf | c | passes |", "|---|---|---|---|---|"]
    own = res["own fit (today)"]
    for row, r in res.items():
        cells = " | ".join(f"{r[s]['err']:.2f} / {r[s]['c90']:.0%} / {r[s]['c50']:.0%}"
                           for s in ("gem", "gemhalf"))
        c = f"{np.exp(r['gemhalf']['log_c']):.3f}" if "candidate" in row else "-"
        ok = ("yes" if r["gemhalf"]["err"] <= 1.0 and r["gem"]["err"] <= own["gem"]["err"] + 0.10
              else "no") if "candidate" in row else "-"
        lines.append(f"| {row} | {cells} | {c} | {ok} |")
    lines += ["", "Rule (addendum 4): gemhalf error <= 1.0% and gem error at most 0.10 above its "
              "own fit; one split, a screen, not an adoption.", "",
              "*Regenerate: `nice -n 19 .venv/bin/python benchmarks/law_lr_factor.py` (cached in "
              "`results/residual_cache/law_lrf_*.json`)*"]
    (HERE / "results" / "law_lr_factor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
