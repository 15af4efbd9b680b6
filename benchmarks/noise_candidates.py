"""Point (MAP) screen of checkpoint-noise models for curve fits (``bench_residual.py``).

The constant ``sigma`` of a curve fit absorbs the large scatter of early checkpoints (short
runs are mostly early), so the bands of long held-out runs come out too wide. Candidates for
the sd of a checkpoint's log-loss residual (``S`` its step, ``f = S / S_last`` its fraction of
the run, ``m_S`` the training table's mean log step, ``m_f`` its mean log fraction):

- ``constant``: ``sigma`` (today's model);
- ``step power``: ``sigma (S / e^{m_S})^{-gamma}``;
- ``step floor``: ``sqrt(sigma^2 + sigma_e^2 (S / e^{m_S})^{-2 gamma})`` (a floor plus an
  early transient that decays as a power of the step);
- ``fraction power`` / ``fraction floor``: the same in ``f`` (``e^{m_f}`` for ``e^{m_S}``);
- ``student t``: constant scale, Student-t residuals (``nu ~ Gamma(2, 0.1)``, the library's
  ``family = "studentt"``), no offsets (the library's Student-t offsets are explicit, not
  integrated out).

Priors: the spec's on the law and ``sigma``; ``gamma ~ HalfNormal(2)``, ``sigma_e ~
HalfNormal(0.05)``. Each candidate is fitted at its maximum a posteriori point (L-BFGS-B then
Nelder-Mead, three rounds, from the library's ``curve_point_fit``), with whole-curve offsets
(sd ``sigma_curve`` ~ HalfNormal(0.03), integrated out) or without, on the sets of
``residual_candidates`` (mis1-3, gem, gemhalf). Scores on every held-out checkpoint: median abs
% error of the law at the MAP and the coverage of the 50% and 90% predictive bands of a Laplace
approximation at the MAP (law uncertainty: 1000 draws from the inverse Hessian; then a new
curve's noise and, with offsets, a new offset). A first run scored plug-in bands at the MAP (no
law uncertainty); its coverages were within a few points of the Laplace ones on every row
scored by both, so the law's uncertainty is not what makes the bands wrong.

Criterion, fixed before scoring: the mean over the five sets of ``|c90 - 0.90| + |c50 - 0.50|``
(each set counts once, whatever its size), lowest wins; a candidate whose median error on any
set is more than 0.1 points above the constant-noise model's with the same offsets is out; a
tie within 0.02 goes to fewer parameters.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from residual_candidates import SETS, _logprior, polish, tables
from scipy import stats

from bayes_scaling.fitting.dynamics import curve_point_fit
from bayes_scaling.laws.curve import uncentre
from bayes_scaling.laws.registry import CURVE_LAWS
from bayes_scaling.model.build_curves import CURVE_SD_PRIOR
from bayes_scaling.model.centre import curve_centre
from bayes_scaling.model.spec import load_spec

warnings.simplefilter("ignore")
NOISE = ("constant", "step power", "step floor", "fraction power", "fraction floor", "student t")
NU_PRIOR = (2.0, 0.1)   # nu ~ Gamma(2, rate 0.1), the library's default for Student-t
LAPLACE_DRAWS = 1000
OFFSETS = ("none", "curve")
GAMMA_SD, EARLY_SD = 2.0, 0.05


def _log_x(t, noise: str) -> np.ndarray:
    """log S or log f per checkpoint (f: step over the curve's last step in ``t``)."""
    log_s = np.log(t.s)
    if noise.startswith("step"):
        return log_s
    last = t.frame.groupby("run_id", sort=False)["steps"].transform("max").to_numpy(float)
    return log_s - np.log(last)


def point_sd(noise: str, z: np.ndarray, lx: np.ndarray, ref: float) -> np.ndarray:
    """Checkpoint sd (scale) on log loss; ``z`` = (log sigma, log gamma, log sigma_e)."""
    sigma = np.exp(z[0])
    if noise in ("constant", "student t"):
        return np.full(lx.shape, sigma)
    gamma, u = np.exp(z[1]), lx - ref
    if noise.endswith("power"):
        return sigma * np.exp(-gamma * u)
    return np.sqrt(sigma**2 + np.exp(2 * z[2]) * np.exp(-2 * gamma * u))


def hetero_marginal(resid, idx, ng: int, var: np.ndarray, sd: float | None) -> float:
    """Normal log density of residuals of per-point variance ``var``, plus (``sd`` not None)
    one offset of sd ``sd`` per curve ``idx`` integrated out (Sherman-Morrison)."""
    base = -0.5 * float(np.sum(np.log(2 * np.pi * var) + resid**2 / var))
    if sd is None:
        return base
    a = np.bincount(idx, weights=1 / var, minlength=ng)
    b = np.bincount(idx, weights=resid / var, minlength=ng)
    q = 1 + sd**2 * a
    return base - 0.5 * float(np.sum(np.log(q) - sd**2 * b**2 / q))


def _active(k: int, noise: str, offsets: str) -> np.ndarray:
    """Indices of the free coordinates of z = (law, log sigma, log gamma, log sigma_e,
    log sigma_curve, log nu)."""
    extra = [0]
    if noise not in ("constant", "student t"):
        extra.append(1)
    if noise.endswith("floor"):
        extra.append(2)
    if offsets == "curve":
        extra.append(3)
    if noise == "student t":
        extra.append(4)
    return np.r_[np.arange(k), k + np.array(extra)]


def _hessian(f, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x``."""
    d = x.size
    out = np.empty((d, d))
    f0 = f(x)
    for i in range(d):
        for j in range(i, d):
            ei, ej = np.eye(d)[i] * h, np.eye(d)[j] * h
            if i == j:
                v = (f(x + ei) - 2 * f0 + f(x - ei)) / h**2
            else:
                v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                     + f(x - ei - ej)) / (4 * h * h)
            out[i, j] = out[j, i] = v
    return out


def map_noise(model: str, train, test, noise: str, offsets: str) -> dict[str, Any]:
    """MAP of one (noise, offsets) candidate on ``train``; held-out scores on ``test``: the
    plug-in bands at the MAP and the bands of a Laplace approximation (law uncertainty too)."""
    spec = load_spec(model)
    law = CURVE_LAWS[spec.law]
    pos = [not p.startswith("log_") for p in law.params]
    k = len(law.params)
    centre = curve_centre(train)
    inp, tinp = train.law_inputs(law.inputs), test.law_inputs(law.inputs)
    lx, tlx = _log_x(train, noise), _log_x(test, noise)
    ref = float(np.mean(lx))
    th0 = curve_point_fit(spec, train, random_seed=1, starts=4)
    x0 = np.array([np.log(th0[p]) if q else th0[p] for p, q in zip(law.params, pos, strict=True)])
    idx, ng = np.asarray(train.curve_index), int(train.n_curves)
    act = _active(k, noise, offsets)

    def mean(x, inputs):
        th = {p: float(np.exp(v) if q else v) for p, v, q in zip(law.params, x[:k], pos,
                                                                  strict=True)}
        return law.log_mean(*inputs, **uncentre(th, centre))

    def nlp(z):
        with np.errstate(all="ignore"):
            r = train.log_loss - mean(z, inp)
            var = point_sd(noise, z[k:k + 3], lx, ref) ** 2
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(var)) and var.min() > 0):
            return 1e10
        lp = sum(_logprior(spec.priors[p], np.exp(v) if q else v) + (v if q else 0.0)
                 for p, v, q in zip(law.params, z[:k], pos, strict=True))
        lp += _logprior(spec.likelihood.sigma, np.exp(z[k])) + z[k]
        if noise not in ("constant", "student t"):
            lp += stats.halfnorm.logpdf(np.exp(z[k + 1]), scale=GAMMA_SD) + z[k + 1]
        if noise.endswith("floor"):
            lp += stats.halfnorm.logpdf(np.exp(z[k + 2]), scale=EARLY_SD) + z[k + 2]
        if noise == "student t":   # no offsets: the library's Student-t likelihood
            nu = np.exp(z[k + 4])
            lp += stats.gamma.logpdf(nu, NU_PRIOR[0], scale=1 / NU_PRIOR[1]) + z[k + 4]
            return -(float(stats.t.logpdf(r, nu, scale=np.sqrt(var)).sum()) + lp)
        sd = None
        if offsets == "curve":
            sd = np.exp(z[k + 3])
            lp += _logprior(CURVE_SD_PRIOR, sd) + z[k + 3]
        return -(hetero_marginal(r, idx, ng, var, sd) + lp)

    z = np.r_[x0, np.log(max(th0["rms"], 1e-3)), np.log(0.5), np.log(0.02), np.log(0.01),
              np.log(10.0)]

    def sub(y):
        full = z.copy()
        full[act] = y
        return nlp(full)

    y = z[act]
    y = polish(sub, y)
    z[act] = y
    out = {"sigma": float(np.exp(z[k])), "gamma": float(np.exp(z[k + 1])),
           "sigma_e": float(np.exp(z[k + 2])), "sigma_curve": float(np.exp(z[k + 3])),
           "nu": float(np.exp(z[k + 4])),
           "test_points": int(test.n_points), "train_points": int(train.n_points)}
    with np.errstate(all="ignore"):
        mu = mean(z, tinp)
    out["err"] = float(np.median(100 * np.abs(np.exp(mu) / test.loss - 1)))
    # Laplace: draws of z ~ N(MAP, H^-1) on the free coordinates, then a new curve's noise
    rng = np.random.default_rng(20261207)
    cov = np.linalg.pinv(_hessian(sub, y))
    cov = (cov + cov.T) / 2
    w, v = np.linalg.eigh(cov)
    ys = y + (rng.standard_normal((LAPLACE_DRAWS, y.size)) * np.sqrt(np.clip(w, 0, None))) @ v.T
    tidx = np.asarray(test.curve_index)
    sims = np.empty((LAPLACE_DRAWS, test.n_points))
    for i, yi in enumerate(ys):
        zi = z.copy()
        zi[act] = yi
        with np.errstate(all="ignore"):
            m = mean(zi, tinp)
            sd_t = point_sd(noise, zi[k:k + 3], tlx, ref)
        eps = rng.standard_normal(test.n_points)
        if noise == "student t":
            eps = rng.standard_t(np.exp(zi[k + 4]), test.n_points)
        sims[i] = m + sd_t * eps
        if offsets == "curve":
            sims[i] += np.exp(zi[k + 3]) * rng.standard_normal(test.n_curves)[tidx]
    y_obs = test.log_loss
    for p in (50, 90):
        lo, hi = np.nanpercentile(sims, [50 - p / 2, 50 + p / 2], axis=0)
        out[f"c{p}"] = float(np.mean((y_obs >= lo) & (y_obs <= hi)))
    out["err_laplace"] = float(np.median(100 * np.abs(np.exp(np.nanmedian(sims, axis=0))
                                                      / test.loss - 1)))
    out["hessian_ok"] = bool(np.all(w > 0))
    return out


def noise_file(name: str, noise: str, offsets: str) -> str:
    return f"noise2_{name}_{noise.replace(' ', '_')}_off{offsets}.json"


def screen_noise(cache: Path, sets=SETS, noises=NOISE, offsets=OFFSETS) -> None:
    """Every (set, noise, offsets) not yet in ``cache`` (one JSON file each).

    Curve offsets with a non-constant noise are screened on mis1 and mis3 only: there they
    miss by 2.4-12% (the offsets pull the size exponent, as with constant noise), which the
    criterion's error guard rules out whatever the other sets say.
    """
    cache.mkdir(parents=True, exist_ok=True)
    for name in sets:
        todo = [(n, o) for o in offsets for n in noises
                if not (cache / noise_file(name, n, o)).exists()
                and not (n == "student t" and o == "curve")
                and (o == "none" or n == "constant" or name == "mis1" or name == "mis3")]
        if not todo:
            continue
        model, train, test = tables(name, None)
        for n, o in todo:
            out = map_noise(model, train, test, n, o)
            (cache / noise_file(name, n, o)).write_text(json.dumps(out))
            print("noise", name, n, o, {k: round(v, 4) for k, v in out.items()}, flush=True)


def criterion(rows: dict[str, dict[str, Any]]) -> float:
    """Mean over sets of |c90 - 0.90| + |c50 - 0.50| (the screen's criterion)."""
    return float(np.mean([abs(r["c90"] - 0.9) + abs(r["c50"] - 0.5) for r in rows.values()]))


if __name__ == "__main__":
    import sys
    screen_noise(Path(__file__).resolve().parent / "results" / "residual_cache",
                 sets=tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else SETS)
