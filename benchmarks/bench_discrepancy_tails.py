"""The discrepancy's shape: are the errors heavier-tailed than the Normal band, and which ``nu``?

Candidate S of ``benchmarks/CRITERIA_s13_i15.md`` (:mod:`bayes_scaling.fitting.tails`). From
the caches of ``bench_discrepancy_prior.py`` (stage 1: every whole ladder's rolling-origin
errors) and the scored table of ``bench_discrepancy_nuts.py``, no fit:

- the standardized errors ``z``: outer, ``Phi^-1(PIT)`` of the product's held-out runs; inner,
  each ladder's rolling-origin errors minus its drift over ``sqrt(s^2 + v + D)`` under the
  per-kind prior learned without its source; coverage of the Normal's central intervals, the
  ratio of the 50% and 90% quantiles of ``|z|`` (0.410 for a Normal) and the excess kurtosis;
- the cross-ladder log likelihood of each ``nu`` of :data:`~bayes_scaling.fitting.tails.NU_GRID`
  (:func:`~bayes_scaling.fitting.tails.fit_nu`), over every ladder and without each source
  (the ``nu`` each source's ladders are scored with, leave one source out).

Writes ``benchmarks/results/discrepancy_tails.md``. Run: ``BAYES_SCALING_DATA=../shared/data
nice -n 15 .venv/bin/python benchmarks/bench_discrepancy_tails.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_discrepancy_drift import drift_pops
from bench_discrepancy_prior import CACHE, RESULTS, _cached, cached_parts, remeasure
from ladders import public_ladders

from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.calibrate import (
    KAPPA_GRID,
    PARTS,
    TAU0_GRID,
    discrepancy_posterior_parts,
)
from bayes_scaling.fitting.drift import ladder_drift
from bayes_scaling.fitting.tails import (
    NU_GRID,
    PIN_GRID,
    TailTerms,
    fit_nu,
    tail_loglik,
    tail_terms,
)

PRODUCT = "nuts + xl-source (product)"


def source_prior(rolling: dict, ladders, exclude: set[str]):
    """The shipped form of the cross-ladder prior (per kind, untempered, with the drift
    populations) learned without ``exclude``."""
    return cached_parts(rolling, ladders, False, exclude).with_drift(
        drift_pops(rolling, ladders, exclude))


def ladder_terms(bt, prior, part: str = "all") -> TailTerms:
    """One ladder's rolling-origin errors as the shape's likelihood reads them, under ``prior``."""
    bt = bt.with_distance("hull_compute")
    drift = ladder_drift(bt, prior, "all")
    lv = np.broadcast_to(np.asarray(bt.law_var, dtype=float), bt.residuals.shape)
    return tail_terms(bt.residuals, bt.noise_scale**2 + lv, bt.by_kind,
                      (TAU0_GRID, KAPPA_GRID), discrepancy_posterior_parts(bt, prior),
                      tuple(drift[p].value for p in PARTS), part)


def _only(t: TailTerms, mask: np.ndarray) -> TailTerms:
    return TailTerms(t.resid[mask], t.base_var[mask], t.disc_var[mask],
                     None if t.shape_var is None else t.shape_var[mask])


def tail_nu(rolling: dict, ladders, exclude: set[str], prior,
            split: str | None = None, pinned: bool = False,
            part: str = "all") -> tuple[float, dict]:
    """``nu`` learned from every ladder not in ``exclude`` (each source weighing one), under
    ``prior`` (learned without ``exclude`` too), and the log likelihood of each ``nu``;
    ``split`` (diagnostic): the errors of one kind of hold-out only (``"c"`` budgets, ``"n"``
    sizes); ``pinned``: the t pinned at the Normal's 5%/95% quantiles (candidate Q); ``part``:
    ``"shape"``, the t on the hull part of the variance only (candidate P)."""
    names = [n for n in rolling if n not in exclude]
    srcs = [ladders[n][0] for n in names]
    wts = [1 / srcs.count(s) for s in srcs]
    terms = [ladder_terms(rolling[n], prior, part) for n in names]
    if split is not None:
        terms = [_only(t, rolling[n].split == split) for t, n in zip(terms, names, strict=True)]
    ll = {nu: sum(w * tail_loglik(t, nu, pinned) for w, t in zip(wts, terms, strict=True))
          for nu in (PIN_GRID if pinned else NU_GRID)}
    return fit_nu(terms, wts, pinned=pinned), ll


def pit_hist(pit: pd.Series) -> str:
    """The PIT's 10-bin histogram as counts (flat: calibrated)."""
    return " ".join(str(c) for c in np.histogram(pit, bins=10, range=(0, 1))[0])


def q_figures(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Coverage at 50/80/90/95%, the 50% and 90% interval scores and the PIT histogram."""
    g = table.groupby(keys)
    cov = {f"cov{p}": g[f"in_{p}"].mean() for p in (50, 80, 90, 95)}
    return pd.DataFrame({"n": g.size(), **cov,
                         "is50": g["interval_score_50"].mean(),
                         "is90": g["interval_score_90"].mean(),
                         "pit": g["pit"].apply(pit_hist)}).reset_index()


def render_pinned(table: pd.DataFrame, cand: str, ref: str, accept,
                  short: str = "Q") -> list[str]:
    """Candidate Q (or P, ``short="P"``, addendum 3) against the product
    (``CRITERIA_s13_i15.md``): conditions 1-5 of ``accept``
    (:func:`bench_discrepancy_drift.accept_reach`; P: condition 3 with its 0.02-point Monte
    Carlo tolerance) and the candidate's condition 6."""
    c, r, ok = accept(table, cand, ref)
    sel = {v: table[table["variant"] == v] for v in (cand, ref)}
    is50 = {v: float(t["interval_score_50"].mean()) for v, t in sel.items()}
    cov95 = {v: float(t["in_95"].mean()) for v, t in sel.items()}
    names = ["pooled 90% in 0.85-0.95 and 50% in 0.40-0.60", "lowest ladder >= 0.70 and not "
             "lower", "median abs error not higher", "interval score (90%) not higher",
             "Huber better on no more ladders", "50% in 0.40-0.60, 50% interval score not "
             "higher, 95% coverage not lower"]
    if short == "P":
        ok = [ok[0], ok[1], c["mape"] <= r["mape"] + 0.02, *ok[3:5],
              0.40 <= c["cov50"] <= 0.60 and c["is90"] <= r["is90"] and is50[cand] <= is50[ref]]
        names[2] = "median abs error at most 0.02 points higher"
        names[5] = "50% in 0.40-0.60, 90% and 50% interval scores not higher"
    else:
        ok = [*ok[:5], 0.40 <= c["cov50"] <= 0.60 and is50[cand] <= is50[ref]
              and cov95[cand] >= cov95[ref]]
    title = ("Candidate P (pinned t on the shape part)", "addendum 3") if short == "P" else (
        "Candidate Q (90%-pinned t)", "addendum")
    lines = [f"### {title[0]} against {ref} (`CRITERIA_s13_i15.md`, {title[1]})",
             "", "| | 90% | 50% | 95% | lowest ladder at 90% | median abs err % | IS 90 | IS 50 "
             "| Huber better on |", "|---|---|---|---|---|---|---|---|---|"]
    for v, f in ((cand, c), (ref, r)):
        lines.append(f"| {v} | {f['cov90']:.3f} | {f['cov50']:.3f} | {cov95[v]:.3f} | "
                     f"{f['lowest']} {f['lowest_cov90']:.2f} | {f['mape']:.4f} | "
                     f"{f['is90']:.4f} | {is50[v]:.4f} | {f['huber_better']} |")
    lines += ["", "Conditions: " + "; ".join(f"{i + 1}. {n}: {'yes' if k else 'NO'}"
                                             for i, (n, k) in enumerate(zip(names, ok,
                                                                             strict=True))),
              "", f"**{f'Met: adopt {short}' if all(ok) else 'Not met'}.**", ""]
    head = (f"| {{w}} | runs | cov 50 {short} / prod | cov 80 | cov 90 | cov 95 | IS 50 {short} "
            f"/ prod | IS 90 {short} / prod | PIT {short} (10 bins) | PIT prod |\n"
            + "|---" * 10 + "|")
    t = table[table["variant"].isin([cand, ref])].assign(all="pooled")
    for key in ("all", "by", "source", "ladder"):
        fig = q_figures(t, ["variant", key])
        a, b = (fig[fig["variant"] == v].set_index(key) for v in (cand, ref))
        lines += [head.format(w=key)]
        for k in a.index:
            x, y = a.loc[k], b.loc[k]
            lines.append(f"| {k} | {int(x['n'])} | " + " | ".join(
                f"{x[f'cov{p}']:.2f} / {y[f'cov{p}']:.2f}" for p in (50, 80, 90, 95))
                + f" | {x['is50']:.4f} / {y['is50']:.4f} | {x['is90']:.4f} / {y['is90']:.4f} | "
                f"{x['pit']} | {y['pit']} |")
        lines.append("")
    return lines


def z_row(label: str, z: np.ndarray) -> str:
    a = np.abs(z)
    cov = [np.mean(a <= stats.norm.ppf((1 + p) / 2)) for p in (0.5, 0.8, 0.9, 0.95)]
    ratio = np.quantile(a, 0.5) / np.quantile(a, 0.9)
    return (f"| {label} | {z.size} | " + " | ".join(f"{c:.3f}" for c in cov)
            + f" | {ratio:.3f} | {stats.kurtosis(z):.2f} |")


def main() -> None:
    ladders = public_ladders()
    rolling = {n: remeasure(bt, ladders[n][1]) for n, bt in _cached("rolling_errors", dict).items()}
    head = ["| errors | n | cov 50 | cov 80 | cov 90 | cov 95 | `|z|` q50/q90 (Normal 0.410) | "
            "excess kurtosis |", "|---|---|---|---|---|---|---|---|"]
    lines = ["## The discrepancy's shape: standardized errors against the Normal band", "",
             "Outer: `z = Phi^-1(PIT)` of the product's held-out runs (NUTS, leave one ladder "
             "out). Inner: every whole ladder's rolling-origin errors minus its drift, over "
             "`sqrt(s^2 + v + D)`, `D` the per-kind posterior discrepancy variance under the "
             "prior learned without the ladder's source. `benchmarks/CRITERIA_s13_i15.md`.", "",
             *head]
    runs = CACHE / "calibration_lolo_nuts_partial_runs.csv"
    if runs.exists():
        t = pd.read_csv(runs)
        p = t[t["variant"] == PRODUCT]
        zo = stats.norm.ppf(np.clip(p["pit"].to_numpy(), 1e-4, 1 - 1e-4))
        lines.append(z_row("outer, pooled", zo))
        for by in sorted(p["by"].unique()):
            lines.append(z_row(f"outer, held out by {by}", zo[(p["by"] == by).to_numpy()]))
    per, pooled = [], []
    for n, bt in rolling.items():
        ex = {m for m in rolling if ladders[m][0] == ladders[n][0]}
        t_ = ladder_terms(bt, source_prior(rolling, ladders, ex))
        z = t_.resid / np.sqrt(t_.base_var + t_.disc_var)
        pooled.append(z)
        per.append(z_row(f"inner, {n}", z))
    lines += [z_row("inner, pooled", np.concatenate(pooled)), *per, ""]
    lines += ["### `nu` learned across ladders (each source weighing one)", "",
              "Weighted log likelihood of the rolling-origin errors for each `nu` "
              "(variance-matched Student-t discrepancy; `inf`: Normal). Leave one source out: "
              "the `nu` that source's ladders are scored with.", "",
              "| ladders | chosen nu | " + " | ".join(f"{v:g}" for v in NU_GRID) + " |",
              "|---|---|" + "---|" * len(NU_GRID)]
    sources = sorted({s for s, _ in ladders.values()})
    for src in [None, *sources]:
        ex = set() if src is None else {m for m in rolling if ladders[m][0] == src}
        nu, ll = tail_nu(rolling, ladders, ex, source_prior(rolling, ladders, ex))
        lines.append(f"| {'all' if src is None else 'without ' + src} | {nu:g} | "
                     + " | ".join(f"{v:.1f}" for v in ll.values()) + " |")
        print(lines[-1], flush=True)
    lines += ["", "### Candidate Q: `nu` of the t pinned at the Normal's 5% and 95% quantiles",
              "", "The same likelihood under the pinned scaling (`lambda = c^2 nu / W`), grid "
              "`PIN_GRID`.", "",
              "| ladders | chosen nu | " + " | ".join(f"{v:g}" for v in PIN_GRID) + " |",
              "|---|---|" + "---|" * len(PIN_GRID)]
    for src in [None, *sources]:
        ex = set() if src is None else {m for m in rolling if ladders[m][0] == src}
        nu, ll = tail_nu(rolling, ladders, ex, source_prior(rolling, ladders, ex), pinned=True)
        lines.append(f"| {'all' if src is None else 'without ' + src} | {nu:g} | "
                     + " | ".join(f"{v:.1f}" for v in ll.values()) + " |")
        print(lines[-1], flush=True)
    prior_all = source_prior(rolling, ladders, set())
    for split, what in (("c", "budget hold-outs only"), ("n", "size hold-outs only")):
        nu, ll = tail_nu(rolling, ladders, set(), prior_all, split)
        lines.append(f"| all, {what} (diagnostic) | {nu:g} | "
                     + " | ".join(f"{v:.1f}" for v in ll.values()) + " |")
        print(lines[-1], flush=True)
    lines += ["", "*Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 15 .venv/bin/python "
              "benchmarks/bench_discrepancy_tails.py` (after `bench_discrepancy_prior.py` and "
              "`bench_discrepancy_nuts.py`)*", ""]
    with atomic_path(RESULTS / "discrepancy_tails.md") as tmp:
        Path(tmp).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
