"""Point (MAP) screen of fixes for the curve fits' early-step shortfall (``bench_residual.py``).

Each candidate is fitted at its maximum a posteriori point (L-BFGS-B then Nelder-Mead, three
rounds, from the library's multi-start least-squares fit ``curve_point_fit``; the spec's priors
on the law's centred constants and ``sigma``) and scored by the held-out median abs % error of
the law (the predictive median of a new curve: offsets have mean 0) on every checkpoint of the
held-out sizes. Sets: (Mis)Fitting top 1, 2, 3 sizes held out (``dynamics_schedule_fixed_b``),
Gemstones WSD and Gemstones half-learning-rate (constant rate only), 3 largest models held out
(``dynamics_schedule``, ``--warmup-fraction 0``). Candidates:

- ``curve offsets``: today's model (iid noise, one offset per curve, sd ``sigma_curve`` with
  the library's HalfNormal(0.03) prior, integrated out);
- ``no offsets``: no whole-curve offsets (``--curve-offsets none``);
- ``offsets sd 0.003``: offsets kept but their sd fixed small (shrunk hard);
- ``offsets prior 0.005`` / ``0.01``: ``sigma_curve ~ HalfNormal(0.005 / 0.01)``;
- ``offsets per size``: one offset shared by the curves of a size;
- ``early term``: ``L = L_law + E exp(-S1/s_e)`` (an additive early-step excess decaying in the
  forward area S1, i.e. the cumulative learning rate), ``log E ~ N(log 0.1, 1)`` (nats),
  ``log(s_e/e^{m_S}) ~ N(log 0.05, 1.5)`` (``m_S`` the mean log step), with curve offsets;
  ``early term, prior 0.005``: the same with ``sigma_curve ~ HalfNormal(0.005)``;
- warm-up fraction 0.2 / 0.3 (``--warmup-fraction``; default 0.1 for (Mis)Fitting).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from bench_schedule import gemstones_wsd, misfitting_tables
from scipy import stats
from scipy.optimize import minimize

from bayes_scaling.data.curves import load_curves
from bayes_scaling.fitting.dynamics import curve_point_fit
from bayes_scaling.laws.curve import uncentre
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.build_curves import CURVE_SD_PRIOR
from bayes_scaling.model.centre import curve_centre
from bayes_scaling.model.spec import Prior, load_spec

warnings.simplefilter("ignore")
EARLY = {"early": "exp", "le_mu": np.log(0.1), "ls_mu": np.log(0.05)}
CANDIDATES: dict[str, dict[str, Any]] = {
    "curve offsets": {}, "no offsets": {"offsets": False},
    "offsets sd 0.003": {"sd": 0.003}, "offsets prior 0.005": {"sd_prior": 0.005},
    "offsets prior 0.01": {"sd_prior": 0.01}, "offsets per size": {"group": "size"},
    "early term": EARLY, "early term, prior 0.005": {**EARLY, "sd_prior": 0.005}}
SETS = ("mis1", "mis2", "mis3", "gem", "gemhalf")


def tables(name: str, warmup: float | None):
    """(model, train, test) of one set; ``warmup`` None: the set's default rule."""
    load = {} if warmup is None else {"warmup_fraction": warmup}
    if name.startswith("mis"):
        return ("dynamics_schedule_fixed_b", *misfitting_tables(int(name[-1]), **load))
    df = gemstones_wsd("base" if name == "gem" else "half")
    cut = np.sort(df["n_params"].unique())[-2] * 0.98   # --holdout-top 2: 3 models
    base = {"warmup_fraction": 0.0, **load}
    train = load_curves(df[df["n_params"] < cut], **base)
    test = load_curves(df[df["n_params"] >= cut], **base, max_points_per_curve=None,
                       max_points=None)
    return "dynamics_schedule", train, test


def _logprior(prior: Prior, x: float) -> float:
    k = prior.kwargs
    if prior.dist == "Normal":
        return stats.norm.logpdf(x, k["mu"], k["sigma"])
    if prior.dist == "LogNormal":
        return stats.lognorm.logpdf(x, k["sigma"], scale=np.exp(k["mu"]))
    return stats.halfnorm.logpdf(x, scale=k["sigma"])   # HalfNormal


def _marginal(resid, idx, ng: int, sigma: float, sd: float) -> float:
    """iid Normal noise plus one offset of sd ``sd`` per group ``idx``, offsets integrated out
    (``build_curves._curve_marginal_logp``)."""
    n = np.bincount(idx, minlength=ng).astype(float)
    s1 = np.bincount(idx, weights=resid, minlength=ng)
    s2 = np.bincount(idx, weights=resid**2, minlength=ng)
    var, v = sigma**2, sigma**2 + n * sd**2
    per = -0.5 * (n * np.log(2 * np.pi) + (n - 1) * np.log(var) + np.log(v)
                  + (s2 - sd**2 * s1**2 / v) / var)
    return float(per[n > 0].sum())


def polish(fun, x: np.ndarray) -> np.ndarray:
    """Minimise ``fun`` from ``x``: three rounds of L-BFGS-B then Nelder-Mead (the screens' MAP)."""
    for _ in range(3):
        x = minimize(fun, x, method="L-BFGS-B", options={"maxiter": 3000}).x
        x = minimize(fun, x, method="Nelder-Mead",
                     options={"maxiter": 4000, "maxfev": 4000, "xatol": 1e-6,
                              "fatol": 1e-6}).x
    return x


def map_score(model: str, train, test, cand: dict[str, Any]) -> dict[str, float]:
    """MAP of one candidate on ``train``; held-out median abs % error on ``test``."""
    spec = load_spec(model)
    law = CURVE_LAWS[spec.law]
    pos = [not p.startswith("log_") for p in law.params]
    k = len(law.params)
    centre = curve_centre(train)
    inp, tinp = train.law_inputs(law.inputs), test.law_inputs(law.inputs)
    th0 = curve_point_fit(spec, train, random_seed=1, starts=4)
    x0 = np.array([np.log(th0[p]) if q else th0[p] for p, q in zip(law.params, pos, strict=True)])
    if cand.get("group") == "size":
        gidx = np.unique(train.log_n.round(6), return_inverse=True)[1]
    else:
        gidx = np.asarray(train.curve_index)
    ng = int(gidx.max()) + 1
    sd_prior = (CURVE_SD_PRIOR if "sd_prior" not in cand
                else Prior("HalfNormal", {"sigma": cand["sd_prior"]}))

    def mean(x, inputs):
        th = {p: float(np.exp(v) if q else v) for p, v, q in zip(law.params, x[:k], pos,
                                                                  strict=True)}
        mu = law.log_mean(*inputs, **uncentre(th, centre))
        if cand.get("early"):   # + E exp(-S1/s_e), s_e = exp(x + m_S)
            mu = np.logaddexp(mu, x[k + 2] - np.exp(inputs[1] - x[k + 3] - centre["s"]))
        return mu

    def nlp(x):
        with np.errstate(all="ignore"):
            r = train.log_loss - mean(x, inp)
        if not np.all(np.isfinite(r)):
            return 1e10
        sigma = np.exp(x[k])
        lp = sum(_logprior(spec.priors[p], np.exp(v) if q else v) + (v if q else 0.0)
                 for p, v, q in zip(law.params, x[:k], pos, strict=True))
        lp += _logprior(spec.likelihood.sigma, sigma) + x[k]
        if cand.get("early"):
            lp += (stats.norm.logpdf(x[k + 2], cand["le_mu"], 1.0)
                   + stats.norm.logpdf(x[k + 3], cand["ls_mu"], 1.5))
        if cand.get("offsets", True) is False:
            return -(float(stats.norm.logpdf(r, 0, sigma).sum()) + lp)
        if "sd" in cand:
            sd = cand["sd"]
        else:
            sd = np.exp(x[k + 1])
            lp += _logprior(sd_prior, sd) + x[k + 1]
        return -(_marginal(r, gidx, ng, sigma, sd) + lp)

    z = np.r_[x0, np.log(0.01), np.log(0.01)]
    if cand.get("early"):
        z = np.r_[z, cand["le_mu"], cand["ls_mu"]]
    z = polish(nlp, z)
    with np.errstate(all="ignore"):
        err = 100 * np.abs(np.exp(mean(z, tinp)) / test.loss - 1)
    th = dict(zip(law.params, z[:k], strict=True))
    return {"err": float(np.median(err)), "sigma": float(np.exp(z[k])),
            "sigma_curve": float(np.exp(z[k + 1])), "alpha_n": float(np.exp(th["alpha_n"])),
            "train": int(train.n_points)}


def screen(cache: Path, sets=SETS, candidates=tuple(CANDIDATES), warmups=(None,)) -> None:
    """Every (set, warm-up, candidate) not yet in ``cache`` (one JSON file each)."""
    cache.mkdir(parents=True, exist_ok=True)
    for name in sets:
        for warmup in warmups:
            todo = [c for c in candidates if not (cache / _file(name, warmup, c)).exists()]
            if not todo:
                continue
            model, train, test = tables(name, warmup)
            for c in todo:
                out = map_score(model, train, test, CANDIDATES[c])
                (cache / _file(name, warmup, c)).write_text(json.dumps(out))
                print("candidate", name, warmup, c, out, flush=True)


def _file(name: str, warmup: float | None, cand: str) -> str:
    return f"cand_{name}_w{'default' if warmup is None else warmup}_{cand.replace(' ', '_')}.json"
