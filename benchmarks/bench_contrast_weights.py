"""How much of the law's group-specific change to trust: weight estimators on every contrast set.

Reuses the fits ``bench_contrast.py --cache FITS`` saved (no new NUTS): for each fit it makes
the rolling-origin comparisons once (:func:`bayes_scaling.query.anchor.calibration_data`) and
scores the anchored P(B better) (:func:`~bayes_scaling.query.anchor.anchored_log_losses`,
``beyond="hold"``) under each estimator of the weight ``w``:

- ``zero`` (:data:`bayes_scaling.query.anchor.WEIGHTING`): ``w = 0`` (keep the observed gap:
  the single-scale ranking with a band), the band's variance terms fitted to the observed
  changes of gaps with ``w`` held at 0, with the flat drift (the default until session 10;
  every estimator but ``zero_rel`` is scored with it);
- ``zero_decay``: the same with the drift variance a power of compute, fitted with each
  rolling origin's place on the ladder (``anchor.DRIFT_DECAY``; session 8, off by default);
- ``zero_rel``: the same with a drift that scales with the gap at the origin
  (``anchor.RELATIVE_DRIFT``; session 9, the default since session 10);
- ``w0``: ``w = 0`` with the pooled regression's variance terms (how the choice of the default
  was first measured, session 6);
- ``pooled``: one weight over every origin (the regression of ``fit_calibration``);
- ``eiv``: the same, corrected for the attenuation by the refits' own error (``x_var``);
- ``latest``: the latest origin's weight, shrunk to the origins' mean as much as they agree.

Sets: the synthetic ladders (against the sign of the true difference), Porian (cuts 1, 2, 4)
and Gemstones (cuts 0.85, 0.5) against the held-out runs, as in ``bench_contrast.py``.
Per set and pooled (each set weighing the same): accuracy of ``P > 0.5`` and Brier score; the
median weight per set. Writes ``benchmarks/results/contrast_weights.md``.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 19 python benchmarks/bench_contrast_weights.py
--cache FITS`` (after ``bench_contrast.py`` wrote FITS).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import itertools
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_contrast as bc
from contrast_sets import synthetic_ladder

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.files import atomic_write_text
from bayes_scaling.fitting.contrast_refits import grouped_point_fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.query import anchor
from bayes_scaling.query.contrast import path_log_loss
from bayes_scaling.query.predict import group_theta
from bayes_scaling.testing import fake_fit, to_sampling

ESTIMATORS = ("zero", "zero_decay", "zero_rel", "w0", "pooled", "eiv", "latest")
#: estimators whose mean confidence and calibration gap |mean confidence - accuracy| are shown
ZEROS = ("zero", "zero_decay", "zero_rel")
LEARNED = ("pooled", "eiv", "latest")
SEED = 3


def calibrations(fit: ScalingFit, cache: Path, key: str) -> dict[str, anchor.ContrastCalibration]:
    """Each estimator's calibration of ``fit`` (the comparisons cached as ``key``)."""
    d = comparisons(fit, cache, key)
    # every estimator but zero_rel with the flat drift, as first scored (sessions 6-9)
    cals = {e: anchor.calibration_from(d, e, decay=False, relative=False)
            for e in anchor.WEIGHTINGS}
    cals["zero_decay"] = anchor.calibration_from(d, "zero", decay=True, relative=False)
    cals["zero_rel"] = anchor.calibration_from(d, "zero", decay=False, relative=True)
    cals["w0"] = replace(cals["pooled"], weight=0.0, weight_sd=0.0)
    return {e: cals[e] for e in ESTIMATORS}


def comparisons(fit: ScalingFit, cache: Path, key: str) -> dict[str, np.ndarray]:
    """The rolling-origin comparisons of ``fit`` (:func:`anchor.calibration_data`), cached as
    ``key``; those cached before sessions 8 and 9 completed from the fit."""
    path = cache / f"{key}.caldata.pkl"
    if path.exists():
        d = pickle.loads(path.read_bytes())
    else:
        d = anchor.calibration_data(fit)
        path.write_bytes(pickle.dumps(d))
    if "origin_x" not in d:  # comparisons cached before session 8: the origins' compute
        lv = anchor.Levels(fit)
        d = {**d, "origin_x": lv.x[d["origin"]], "top_x": np.array(float(lv.x[-1]))}
    if "gap" not in d:  # comparisons cached before session 9: the observed gap at the origin
        lv, ll = anchor.Levels(fit), fit.runs.log_loss
        d = {**d, "gap": np.array([ll[lv.best(b, int(o))] - ll[lv.best(a, int(o))]
                                   for o, a, b in (c.split("|") for c in d["cluster"])])}
    return d


def p_better(fit, a, b, cal, log_c, log_ratio=None) -> np.ndarray:
    """Anchored predictive P(L_B < L_A) at each target."""
    th = {g: {k: v[:, None] for k, v in group_theta(fit, g).items()} for g in (a, b)}
    _, pred = anchor.anchored_log_losses(fit, (a, b), th, log_c, log_ratio, cal,
                                         np.random.default_rng(SEED), beyond="hold")
    return (pred[1] < pred[0]).mean(axis=0)


def porian(cache: Path) -> list[dict]:
    raw = pd.read_csv(bc.DATA / "porian2024_isoflop" / "porian2024_isoflop.csv")
    budgets = np.sort(raw["flops"].unique())
    held = budgets[-bc.PORIAN_TOP:]
    rows = []
    for corpus, frame in raw.groupby("group"):
        best = bc._best_per_budget(frame)
        settings = sorted(frame["setting"].unique())
        for cut in (1, 2, 4):
            key = f"porian_chinchilla_{corpus}_{cut}"
            if not (cache / f"{key}.nc").exists():
                continue
            fit = ScalingFit.load(cache / f"{key}.nc")
            cals = calibrations(fit, cache, key)
            top = budgets[-bc.PORIAN_TOP - cut]
            for a, b in itertools.combinations(settings, 2):
                ps = {e: p_better(fit, a, b, cals[e], np.log(held)[None, :]) for e in cals}
                for j, c in enumerate(held):
                    if not np.isfinite(best.loc[c, a] * best.loc[c, b]):
                        continue
                    rows.append({"set": "porian", "fit": f"{corpus} {cut}",
                                 "y": bool(best.loc[c, b] < best.loc[c, a]),
                                 "baseline": bool(best.loc[top, b] < best.loc[top, a]),
                                 "anchor_gap": float(best.loc[top, b] - best.loc[top, a]),
                                 "gap": float(best.loc[c, b] - best.loc[c, a]),
                                 **{f"p_{e}": float(p[j]) for e, p in ps.items()},
                                 **_fit_columns(cals)})
    return rows


def _fit_columns(cals: dict[str, anchor.ContrastCalibration]) -> dict[str, float]:
    """Per fit: each learned weight; ``zero_decay``'s drift decay and rate at the top of the
    ladder next to the default's pooled drift rate."""
    return {**{f"w_{e}": cals[e].weight for e in LEARNED},
            "kappa_zero_decay": cals["zero_decay"].drift_decay,
            "drift_zero_decay": cals["zero_decay"].drift_var, "drift_zero": cals["zero"].drift_var,
            "rel_zero_rel": cals["zero_rel"].drift_rel}


def gemstones(cache: Path) -> list[dict]:
    raw, pairs = bc.gemstone_pairs()
    test = pairs[pairs["c"] > np.quantile(raw["flops"], bc.GEM_HELD)]
    rows = []
    for q in bc.GEM_CUTS:
        key = f"gemstones_{q}"
        if not (cache / f"{key}.nc").exists():
            continue
        fit = ScalingFit.load(cache / f"{key}.nc")
        cals = calibrations(fit, cache, key)
        tr = pairs[pairs["c"] <= np.quantile(raw["flops"], q)]
        top = tr.loc[tr["c"].idxmax()]
        n, d = test["n"].to_numpy(), test["d"].to_numpy()
        log_c, log_ratio = np.log(6.0 * n * d)[None, :], np.log(d / n)[None, :]
        ps = {e: p_better(fit, "base", "half", cals[e], log_c, log_ratio) for e in cals}
        for j, (_, r) in enumerate(test.iterrows()):
            rows.append({"set": "gemstones", "fit": f"gemstones {q}",
                         "y": bool(r["half"] < r["base"]),
                         "baseline": bool(top["half"] < top["base"]),
                         "anchor_gap": float(top["half"] - top["base"]),
                         "gap": float(r["half"] - r["base"]),
                         **{f"p_{e}": float(p[j]) for e, p in ps.items()},
                         **_fit_columns(cals)})
    return rows


def point_fit(runs) -> ScalingFit:
    """A stand-in posterior: Normal(0.002) around the grouped point fit (no NUTS)."""
    law = LAWS["chinchilla"]
    start = {p: np.full(runs.n_groups, v)
             for p, v in to_sampling("chinchilla", PUBLISHED["hoffmann2022"]).items()}
    th = grouped_point_fit(law, runs.group_index, runs.log_n, runs.log_d, runs.log_loss, start,
                           runs.n_groups)
    base = {p: float(th[p][0]) for p in law.params}
    offs = {g: {p: float(th[p][i] - th[p][0]) for p in law.group_params}
            for i, g in enumerate(runs.group_names)}
    return fake_fit("chinchilla", base, runs=runs,
                    group_offsets=offs, spread=2e-3, seed=0)


def synthetic(cache: Path, n_ladders: int, seed: int = 0, point: bool = False) -> list[dict]:
    """The ladders of ``bench_contrast.synthetic`` (same seeds), against the true sign.

    A ladder without a saved fit is skipped, or with ``point`` fitted by :func:`point_fit`.
    """
    base, law = PUBLISHED["hoffmann2022"], LAWS["chinchilla"]
    rows = []
    for i in range(n_ladders):
        key = f"synthetic_{seed + i}"
        offs, runs = synthetic_ladder(i, seed)
        if (cache / f"{key}.nc").exists():
            fit = ScalingFit.load(cache / f"{key}.nc")
        elif point:
            fit, key = point_fit(runs), f"{key}_point"
        else:
            continue
        cals = calibrations(fit, cache, key)
        log_c = np.log(np.array([[100.0 * runs.flops.max()]]))
        truth = {g: {p: np.array([[v + offs[g].get(p, 0.0)]])
                     for p, v in to_sampling("chinchilla", base).items()} for g in offs}
        for a, b in itertools.combinations(offs, 2):
            la = path_log_loss(law, truth[a], log_c, None)[0, 0]
            lb = path_log_loss(law, truth[b], log_c, None)[0, 0]
            rows.append({"set": "synthetic", "fit": key, "y": bool(lb < la),
                         "baseline": np.nan, "anchor_gap": np.nan,
                         "gap": float(np.exp(lb) - np.exp(la)),
                         **{f"p_{e}": float(p_better(fit, a, b, cals[e], log_c)[0])
                            for e in cals},
                         **_fit_columns(cals)})
    return rows


def report(rows: pd.DataFrame) -> list[str]:
    out = []
    for name, g in [*rows.groupby("set", sort=False), ("near-ties (real, gap < 0.01)",
                                                       rows[(rows["set"] != "synthetic")
                                                            & (rows["gap"].abs() < 0.01)])]:
        y = g["y"].to_numpy(float)
        r = {"data": name, "n": len(g)}
        for e in ESTIMATORS:
            s = bc.scores(g[f"p_{e}"].to_numpy(), y)
            r[f"acc_{e}"], r[f"brier_{e}"] = s["accuracy"], s["brier"]
            if e in ZEROS:
                r[f"conf_{e}"] = s["mean_confidence"]
                r[f"calgap_{e}"] = abs(s["mean_confidence"] - s["accuracy"])
        real = bool(g["baseline"].notna().all())
        r["acc_baseline"] = float((g["baseline"] == g["y"]).mean()) if real else float("nan")
        # ties (bc.TIE_ANCHOR_NATS, a rule stated before it was applied): 0.5 for every method
        r["ties"] = int((g["anchor_gap"].abs() < bc.TIE_ANCHOR_NATS).sum())
        for e in ("zero", "baseline"):
            call = g["baseline"] if e == "baseline" else g[f"p_{e}"] > 0.5
            r[f"acc_{e}_ties"] = (bc.tie_scored(call == g["y"], g["anchor_gap"]) if real
                                  else float("nan"))
        out.append(r)
    table = pd.DataFrame(out)
    sets = table[~table["data"].str.startswith("near")]
    mean = {"data": "mean over sets", "n": int(sets["n"].sum()),
            **{c: float(sets[c].mean()) for c in table.columns if c not in ("data", "n")}}
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    weights = rows.groupby(["set", "fit"], sort=False)[
        [*(f"w_{e}" for e in LEARNED), "kappa_zero_decay", "drift_zero_decay",
         "drift_zero", "rel_zero_rel"]].first()
    return ["Accuracy of `P > 0.5` and Brier score per set, and their mean over the three sets "
            "(each weighing the same); `acc_baseline`: the single-scale ranking; `ties`: real "
            f"decisions whose gap at the largest training budget is under "
            f"{bc.TIE_ANCHOR_NATS} nats, and `acc_*_ties` the accuracy with every method "
            "scoring 0.5 on them (`bench_contrast.TIE_ANCHOR_NATS`, a rule stated before it "
            "was first applied); `conf_*`: mean confidence (mean of max(P, 1 - P)), `calgap_*`: "
            "|mean confidence - accuracy|:", "",
            *bc._md_table(table), "", "Per fit: the learned weights; for `zero_decay`, the "
            "fitted drift decay `kappa` (log10 of the drift variance per decade down the ladder) "
            "and the drift rate at the top of the ladder, next to the default's pooled one "
            "(`drift_zero`); for `zero_rel`, the relative drift `r²` (per decade per squared "
            "gap):", "",
            *bc._md_table(weights.reset_index()), ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--ladders", type=int, default=6)
    ap.add_argument("--point", action="store_true",
                    help="synthetic ladders without a saved fit: a point fit with a Normal(0.002) "
                    "posterior stands in (accuracy is meaningful, Brier only roughly)")
    args = ap.parse_args()
    rows = pd.DataFrame(synthetic(args.cache, args.ladders, point=args.point) + porian(args.cache)
                        + gemstones(args.cache))
    rows.to_csv(bc.RESULTS / "contrast_weights.csv", index=False)
    lines = ["## Contrasts: how much of the law's group-specific change to trust", "",
             "`benchmarks/bench_contrast_weights.py`: the anchored P(B better) (`beyond=hold`) "
             "under seven estimators of the weight `w` of the law's group-specific change, from "
             "the fits `bench_contrast.py --cache` saved: `zero` (keep the observed "
             "gap, the band's variance fitted with `w` held at 0, flat drift: the default "
             "until session 10), `zero_decay` (the same, the drift variance a power of compute "
             "fitted with each rolling origin's place on the ladder, `anchor.DRIFT_DECAY`, "
             "off), `zero_rel` (the same, with a drift that scales with the gap at the "
             "origin, `anchor.RELATIVE_DRIFT`: the default since session 10, adopted by the "
             "gate of `benchmarks/CRITERIA_s10_i17.md`, which `zero_decay` also passed), "
             "`w0` (the same gap with the pooled regression's variance terms, as first measured), "
             "`pooled` (one regression over all rolling origins), `eiv` (the same, corrected "
             "for the attenuation by the refits' own error), `latest` (the latest origin's "
             "weight, shrunk to the origins' mean as much as they agree). Synthetic: against "
             "the sign of the true difference at 100x the largest training compute; Porian "
             "(cuts 1, 2, 4) and Gemstones (cuts 0.85, 0.5): against the held-out runs. A fit "
             "named `*_point` is a stand-in (`--point`: a Normal(0.002) posterior around the "
             "grouped point fit, for a synthetic ladder without a saved NUTS fit): its accuracy "
             "is meaningful, its Brier score only roughly. A cut without a saved fit is left "
             "out.", "", *report(rows)]
    atomic_write_text(bc.RESULTS / "contrast_weights.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
