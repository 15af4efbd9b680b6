"""The contrast calibration gate (session 10, ``benchmarks/CRITERIA_s10_i17.md``): many synthetic
isoFLOP ladders with known truth, 2-8 groups, whose recipe gaps are law-consistent offsets,
converge, diverge or mix, scored against held-out *observed* gaps at the target.

Why it replaces the two-group converging ladder as the gate for calibration changes: that test's
statistic (the median |z| of 12 ladders x 20 held-out gaps) has about 12 independent units and
one ladder class; the default sits at its bound (0.296 against 0.3), so whether a change that
leaves the band's law-change term alone passes it is decided by the seed (measured in
``.fits/s10_power.py``, figures in the criterion file). This gate has ~60 ladders of four kinds
and hundreds of pairs, and it is only trusted if it rejects two planted faults (the band's
spread doubled, or halved).

Each ladder: 10 budgets ``1e17 * 2^k``, an isoFLOP slice of five splits per budget and group,
lognormal run noise; group ``j``'s log loss is the Chinchilla law's (Hoffmann et al. 2022,
arXiv:2203.15556, their fitted constants) plus ``gap_j(C) = e_j + a_j (C/1e17)^-0.5 +
b_j log10(C/1e17)``: ``offset`` ladders have only ``e_j`` (what group offsets on one law can
represent), ``converging`` ones a fading ``a_j`` (warmup or schedule effects), ``diverging`` ones
a gap growing ``b_j`` per decade, ``mixed`` ones a kind drawn per group. The fit is the grouped
point fit with a Normal(0.002) posterior around it (the stand-in of ``tests/test_anchor.py``);
the contrast is the library's default (``weighting="zero"``, anchored predictive band). The truth
at each target (4x and 32x the top budget) is 5 observed gaps per pair: each group's best run on a
fresh isoFLOP slice there (what the predictive band promises). The oracle is the exact predictive
distribution of that gap (4000 simulated slices).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from bayes_scaling.constants import PUBLISHED
from bayes_scaling.data.runs import load_runs
from bayes_scaling.fitting.contrast_refits import grouped_point_fit
from bayes_scaling.laws import final_loss as laws
from bayes_scaling.query import anchor
from bayes_scaling.query.predict import group_theta
from bayes_scaling.testing import fake_fit, to_sampling

P = PUBLISHED["hoffmann2022"]
CLASSES = ("offset", "converging", "diverging", "mixed")
SIZES = (2, 3, 4, 6, 8)
SPLITS = (0.35, 0.6, 1.0, 1.7, 3.0)
BUDGETS = 1e17 * 2.0 ** np.arange(10)
TARGETS = (4.0, 32.0)  # times the top budget
N_OBS, N_ORACLE = 5, 4000
#: the candidates: (anchor.DRIFT_DECAY, anchor.RELATIVE_DRIFT, scale of the predictive spread[,
#: anchor.SLICE_ANCHOR[, anchor.DRIFT_AT_TOP[, anchor.ML_VARIANCE]]]); None: the library's default
CANDIDATES = {"zero": (False, False, 1.0), "decay": (True, False, 1.0),
              "rel": (False, True, 1.0), "zero_x2": (False, False, 2.0),
              "zero_x0.5": (False, False, 0.5),
              **{f"zero_s{k:g}": (False, False, k) for k in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.2)}}
#: session 11 (``benchmarks/CRITERIA_s11_i17.md``): the default of session 10 (relative drift)
#: against the same with the slice anchor, and planted spread faults of the reference
CANDIDATES_S11 = {"rel": (False, True, 1.0, False), "slice": (False, True, 1.0, True),
                  "rel_x2": (False, True, 2.0, False), "rel_x0.5": (False, True, 0.5, False)}
#: session 11b (``CRITERIA_s11_i17.md`` section 4): every drift term at its rate at the top
CANDIDATES_S11B = {"rel": (False, True, 1.0, False, False), "top": (False, True, 1.0, False, True),
                   "rel_x2": (False, True, 2.0, False, False),
                   "rel_x0.5": (False, True, 0.5, False, False)}
#: session 12 (``CRITERIA_s12_i17.md``): the variance terms by maximum likelihood, for the
#: default (``ml``) and with every drift term at its rate at the top (``top_ml``); ``top``
#: (least squares, the kappa profile fixed) is reported only
CANDIDATES_S12 = {**{k: (*c, False) for k, c in CANDIDATES_S11B.items()},
                  "ml": (False, True, 1.0, False, False, True),
                  "top_ml": (False, True, 1.0, False, True, True)}
#: session 12b (``CRITERIA_s12b_i17.md``): the default (maximum likelihood) against the same with
#: ``w``'s spread per pair (``anchor.PAIR_SPREAD``), and planted spread faults of the reference
_ML = (False, True, 1.0, False, False, True, False)
CANDIDATES_S12B = {"rel": _ML, "pair": (*_ML[:6], True), "rel_x2": (*_ML[:2], 2.0, *_ML[3:]),
                   "rel_x0.5": (*_ML[:2], 0.5, *_ML[3:])}
#: session 12c (``CRITERIA_s12c_i17.md``): the default against the same with ``w``'s spread term
#: capped by the refits' largest observed change of a gap (``anchor.SPREAD_CAP``)
CANDIDATES_S12C = {**{k: (*c, False) for k, c in CANDIDATES_S12B.items() if k != "pair"},
                   "cap": (*_ML, True)}
#: session 13 (``CRITERIA_s13_i17.md``): the default against the same with each refit
#: comparison's variance scaled by its origin's place below the top (``anchor.ORIGIN_SCALE``)
CANDIDATES_S13 = {**{k: (*c, False, False) for k, c in CANDIDATES_S12B.items() if k != "pair"},
                  "scale": (*_ML, False, True, False)}
#: session 13, round 2 (``CRITERIA_s13_i17.md`` addendum 2): the same with ``beta`` integrated
#: over its grid, the band the mixture's (``anchor.ORIGIN_MIX``)
CANDIDATES_S13B = {**{k: (*c, False) for k, c in CANDIDATES_S13.items() if k != "scale"},
                   "mix": (*_ML, False, True, True)}


def _switches(c: tuple) -> tuple:
    """(decay, relative, slice anchor, drift at top, maximum likelihood, per-pair spread,
    capped spread, origin scale, its mixture)."""
    return (c[0], c[1], *(c[i] if len(c) > i else None for i in (3, 4, 5, 6, 7, 8, 9)))
#: the oracle (the exact predictive distribution of the observed gap) and planted faults of it:
#: its spread scaled about its mean (the gate's power is checked on these)
ORACLES = {"oracle": 1.0, "oracle_x2": 2.0, "oracle_x0.5": 0.5, "oracle_x1.5": 1.5,
           "oracle_x0.67": 1.0 / 1.5}


def ladder_spec(i: int, seed: int = 0) -> dict:
    """Ladder ``i``'s class, size, run noise and each group's gap constants ``(e, a, b)``."""
    rng = np.random.default_rng(seed + i)
    kind, k = CLASSES[i % len(CLASSES)], SIZES[(i // len(CLASSES)) % len(SIZES)]
    noise = float(rng.choice([0.004, 0.008]))
    gaps = []
    for _ in range(k):
        g_kind = rng.choice(CLASSES[:3]) if kind == "mixed" else kind
        e = rng.normal(0.0, 0.02)
        a = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.2) if g_kind == "converging" else 0.0
        b = rng.normal(0.0, 0.008) if g_kind == "diverging" else 0.0
        gaps.append((e, a, b))
    return {"kind": kind, "k": k, "noise": noise, "gaps": gaps}


def gap_at(spec: dict, c: float) -> np.ndarray:
    """Each group's log-loss gap at compute ``c``."""
    x = float(np.log10(c / 1e17))
    return np.array([e + a * 10.0 ** (-0.5 * x) + b * x for e, a, b in spec["gaps"]])


def _slice_log_mu(c: float) -> np.ndarray:
    """The law's log loss at each split of the isoFLOP slice at ``c``."""
    theta = to_sampling("chinchilla", P)
    n_opt, _ = laws.chinchilla_optimal(c, **P)
    ns = n_opt * np.array(SPLITS)
    return np.array([float(laws.log_chinchilla(np.log(m), np.log(c / (6 * m)), **theta))
                     for m in ns]), ns


def ladder_runs(spec: dict, seed: int):
    """The ladder's runs (group names ``g0..``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in BUDGETS:
        mu, ns = _slice_log_mu(c)
        for j, gap in enumerate(gap_at(spec, c)):
            for n, m in zip(ns, mu, strict=True):
                rows.append({"group": f"g{j}", "n_params": n, "n_tokens": c / (6 * n),
                             "loss": np.exp(m + gap + spec["noise"] * rng.standard_normal())})
    return load_runs(pd.DataFrame(rows), group_col="group")


def best_losses(spec: dict, c: float, n: int, seed: int) -> np.ndarray:
    """``(n, groups)``: each group's best-run loss on ``n`` fresh isoFLOP slices at ``c``."""
    rng = np.random.default_rng(seed)
    mu, _ = _slice_log_mu(c)
    gap = gap_at(spec, c)
    eps = spec["noise"] * rng.standard_normal((n, gap.size, mu.size))
    return np.exp(mu[None, None, :] + gap[None, :, None] + eps).min(axis=2)


def point_fit(runs, seed: int):
    """A Normal(0.002) posterior around the grouped point fit of ``runs``."""
    law = laws.LAWS["chinchilla"]
    k = runs.n_groups
    start = {p: np.full(k, v) for p, v in to_sampling("chinchilla", P).items()}
    th = grouped_point_fit(law, runs.group_index, runs.log_n, runs.log_d, runs.log_loss, start, k)
    base = {p: float(th[p][0]) for p in law.params}
    offs = {g: {p: float(th[p][i] - th[p][0]) for p in law.group_params}
            for i, g in enumerate(runs.group_names)}
    return fake_fit("chinchilla", base, runs=runs, group_offsets=offs, spread=2e-3, seed=seed)


def score_ladder(i: int, seed: int = 0, candidates=CANDIDATES) -> list[dict]:
    """One record per (pair, target, held-out slice): observed gap, oracle and each candidate's
    mean, sd, P(B better) and 90% band of the predictive difference ``L_B - L_A``: the
    library's anchored band (:func:`~bayes_scaling.query.anchor.anchored_log_losses`, as
    :func:`~bayes_scaling.query.contrast.contrast_groups` draws it, ``beyond="hold"``) under
    the candidate's switches, its spread scaled about its mean by the candidate's scale."""
    spec = ladder_spec(i, seed)
    runs = ladder_runs(spec, seed + 10_000 + i)
    fit = point_fit(runs, seed + i)
    names = list(runs.group_names)
    flops = np.array(TARGETS) * BUDGETS[-1]
    log_c = np.log(flops)[None, :]
    obs = [best_losses(spec, c, N_OBS, seed + 20_000 + 97 * i + t) for t, c in enumerate(flops)]
    ref = [best_losses(spec, c, N_ORACLE, seed + 30_000 + 97 * i + t)
           for t, c in enumerate(flops)]
    slices = {c[3] if len(c) > 3 else None for c in candidates.values()}
    data = {sl: anchor.calibration_data(fit, slice_anchor=sl) for sl in slices}
    theta = {g: {k: v[:, None] for k, v in group_theta(fit, g).items()} for g in names}
    pairs = list(itertools.combinations(range(len(names)), 2))
    bands, betas = {}, {}  # betas: each band's origin scale (0 unless anchor.ORIGIN_SCALE)
    for decay, rel, sl, top, ml, pr, cap, sc, mx in {_switches(c) for c in candidates.values()}:
        cal = anchor.calibration_from(data[sl], "zero", decay=decay, relative=rel, top=top,
                                      ml=ml, pair=pr, cap=cap, scale=sc, mix=mx)
        betas[(decay, rel, sl, top, ml, pr, cap, sc, mx)] = cal.origin_scale
        rng = np.random.default_rng(seed + i)
        for a, b in pairs:
            _, pred = anchor.anchored_log_losses(fit, (names[a], names[b]), theta, log_c, None,
                                                 cal, rng, beyond="hold", slice_anchor=sl)
            d = np.exp(pred[1]) - np.exp(pred[0])
            bands[(decay, rel, sl, top, ml, pr, cap, sc, mx, a, b)] = d
    rows = []
    for a, b in pairs:
        for t in range(flops.size):
            r = ref[t][:, b] - ref[t][:, a]
            for o in obs[t][:, b] - obs[t][:, a]:
                rec = {"ladder": i, "kind": spec["kind"], "k": spec["k"], "a": a, "b": b,
                       "target": TARGETS[t], "obs": float(o), "b_better": bool(o < 0)}
                scaled = [(n, r, s) for n, s in ORACLES.items()] + [
                    (n, bands[(*_switches(c), a, b)][:, t], c[2])
                    for n, c in candidates.items()]
                for name, d, scale in scaled:
                    d = d.mean() + scale * (d - d.mean())
                    rec.update({f"{name}_mean": float(d.mean()), f"{name}_sd": float(d.std()),
                                f"{name}_p": float(np.mean(d < 0)),
                                f"{name}_lo": float(np.quantile(d, 0.05)),
                                f"{name}_hi": float(np.quantile(d, 0.95))})
                rec.update({f"{n}_beta": betas[_switches(c)] for n, c in candidates.items()})
                rows.append(rec)
    return rows


def metrics(frame, name: str) -> dict[str, float]:
    """Brier, accuracy, mean confidence, |confidence - accuracy|, 90% coverage, median |z|."""
    p, y, o = frame[f"{name}_p"].to_numpy(), frame["b_better"].to_numpy(), frame["obs"].to_numpy()
    acc = float(np.mean((p > 0.5) == y))
    conf = float(np.mean(np.maximum(p, 1.0 - p)))
    return {"brier": float(np.mean((p - y) ** 2)), "acc": acc, "conf": conf,
            "calgap": abs(conf - acc),
            "cov90": float(np.mean((frame[f"{name}_lo"] <= o) & (o <= frame[f"{name}_hi"]))),
            "med_z": float(np.median(np.abs(o - frame[f"{name}_mean"]) / frame[f"{name}_sd"]))}


def ladder_bootstrap(frame, name: str, ref: str = "zero", n: int = 2000, seed: int = 0,
                     ) -> np.ndarray:
    """``n`` ladder-resampled values of Brier(``name``) - Brier(``ref``) (pairs of one ladder
    share its fit, so the ladder is the unit resampled). Each ladder's records are weighted
    equally within it; ladders weighted by their record counts, as the pooled Brier is."""
    sq = ((frame[f"{name}_p"] - frame["b_better"]) ** 2
          - (frame[f"{ref}_p"] - frame["b_better"]) ** 2)
    per = sq.groupby(frame["ladder"]).agg(["sum", "count"]).to_numpy()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, per.shape[0], (n, per.shape[0]))
    return per[pick, 0].sum(axis=1) / per[pick, 1].sum(axis=1)
