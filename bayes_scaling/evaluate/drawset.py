"""Posterior draws of a fit as an importance-weighted set, for preposterior next-run ranking."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from bayes_scaling.data.support import (
    DRIFT_VARS,
    Box,
    Reach,
    decades_outside,
    discrepancy_mean,
    discrepancy_var,
)
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.fitting.tails import NU_VAR, PART_VAR, SCALE_VAR, mixing_draws
from bayes_scaling.laws.final_loss import Law
from bayes_scaling.query.predict import fit_box, flat, group_theta, resolve_group
from bayes_scaling.types import SeedLike


# ------------------------------------------------------------------------------ draws
@dataclass(frozen=True)
class DrawSet:
    """Posterior draws of one group, with importance log-weights and the runs' box.

    ``eps`` (standardised run noise, ``(S, K)``) and ``xi`` (standard normals of the
    discrepancy, ``(S, K)``) are drawn once: every candidate is scored with the same random
    numbers, so their differences are not Monte Carlo noise.
    """

    law: Law
    theta: Mapping[str, np.ndarray]
    sigma: np.ndarray
    nu: np.ndarray | None
    kappa: np.ndarray | None
    tau0: np.ndarray | None
    log_w: np.ndarray
    box: Box
    eps: np.ndarray
    xi: np.ndarray
    #: The shape part's ``(tau0, kappa)`` of a per-kind discrepancy (``None``: one pair).
    shape: tuple[np.ndarray, np.ndarray] | None = None
    #: The signed drift per part, ``(scale, shape)`` per draw (``None``: zero-mean).
    drift: tuple[np.ndarray, np.ndarray] | None = None
    #: Per part, how far the ladder's own evidence reaches (``reach=True`` fits; ``None``: all).
    reach: Mapping[str, Reach] | None = None
    #: A Student-t discrepancy's ``(nu, lambda numerator or None)`` per draw
    #: (:mod:`bayes_scaling.fitting.tails`; ``None``: Normal). ``xi`` already carries it.
    tails: tuple[np.ndarray, np.ndarray | None] | None = None

    @property
    def size(self) -> int:
        """Number of draws."""
        return int(self.sigma.size)

    @property
    def weights(self) -> np.ndarray:
        """Normalised importance weights."""
        w = np.exp(self.log_w - self.log_w.max())
        return w / w.sum()

    @property
    def ess(self) -> float:
        """Kish effective sample size of the weights."""
        return float(1.0 / np.sum(self.weights**2))

    def log_mu(self, n: float, d: float) -> np.ndarray:
        """Log mean loss of every draw at ``(n, d)``, shape ``(S,)``."""
        x = {"n": np.full(1, np.log(n)), "d": np.full(1, np.log(d))}
        theta = {k: v[:, None] for k, v in self.theta.items()}
        return np.asarray(self.law.evaluate_log(x, theta), dtype=float).reshape(self.size)

    def log_lik(self, y: np.ndarray, log_mu: np.ndarray) -> np.ndarray:
        """``log p(y_m | theta_s)`` of observed log losses ``y``: shape ``(M, S)``."""
        u = (np.asarray(y, dtype=float)[:, None] - log_mu[None, :]) / self.sigma[None, :]
        if self.nu is None:
            return stats.norm.logpdf(u) - np.log(self.sigma)[None, :]
        return stats.t.logpdf(u, df=self.nu[None, :]) - np.log(self.sigma)[None, :]

    def discrepancy_sd(self, n: float, d: float, box: Box | None = None) -> np.ndarray:
        """Per-draw sd of the extrapolation discrepancy at ``(n, d)`` (zeros if uncalibrated)."""
        if self.kappa is None:
            return np.zeros(self.size)
        box = box or self.box
        far = decades_outside(box, n, d)
        if self.shape is None or box.distance != "hull_compute":
            return np.sqrt(discrepancy_var(far["distance"], self.tau0, self.kappa))
        return np.sqrt(discrepancy_var(far, self.tau0, self.kappa, *self.shape, self.reach))

    def discrepancy_shift(self, n: float, d: float, box: Box | None = None) -> np.ndarray:
        """Per-draw mean of the discrepancy at ``(n, d)``: the signed drift (zeros without)."""
        box = box or self.box
        if self.drift is None or box.distance != "hull_compute":
            return np.zeros(self.size)
        return np.broadcast_to(discrepancy_mean(decades_outside(box, n, d), *self.drift,
                                                self.reach),
                               (self.size,))

    def simulate(self, n: float, d: float, size: int, rng: np.random.Generator) -> np.ndarray:
        """Log losses of ``size`` new runs at ``(n, d)`` from the (weighted) predictive.

        The predictive of :func:`bayes_scaling.query.predict.predict_loss`: the law, run-to-run
        noise and, outside the runs, the extrapolation discrepancy.
        """
        idx = rng.choice(self.size, size=size, p=self.weights)
        eps = (rng.standard_t(self.nu[idx]) if self.nu is not None
               else rng.standard_normal(size))
        z = rng.standard_normal(size)
        if self.tails is not None:  # its mixture, one lambda per new run, after the normals
            nu, num = self.tails
            z = z * np.sqrt(mixing_draws(nu[idx], rng, None if num is None else num[idx]))[:, 0]
        disc = self.discrepancy_shift(n, d)[idx] + self.discrepancy_sd(n, d)[idx] * z
        return self.log_mu(n, d)[idx] + self.sigma[idx] * eps + disc

    def target_draws(self, target: Target, band: str, box: Box | None = None) -> np.ndarray:
        """Log loss at the target per draw and noise replicate, ``(S, K)``, under ``band``.

        ``box`` (default: the draws' own) sets the extrapolation distance of the discrepancy.
        """
        mu = self.log_mu(target.n_params, target.n_tokens)[:, None]
        if band == "law":
            return np.broadcast_to(mu, self.eps.shape)
        sd = self.discrepancy_sd(target.n_params, target.n_tokens, box)
        shift = self.discrepancy_shift(target.n_params, target.n_tokens, box)
        return mu + shift[:, None] + self.sigma[:, None] * self.eps + sd[:, None] * self.xi

    def observe(self, n: float, d: float, log_loss: float) -> DrawSet:
        """The draws after training one run at ``(n, d)`` with outcome ``log_loss``."""
        lik = self.log_lik(np.array([log_loss]), self.log_mu(n, d))[0]
        return replace(self, log_w=self.log_w + lik, box=extend_box(self.box, n, d))


def extend_box(box: Box, n: float, d: float) -> Box:
    """The training support after adding a run at ``(n, d)`` (range and hull)."""
    return box.extended(n, d)


def draw_set(fit: ScalingFit, *, group: str | None = None, n_draws: int | None = None,
             random_seed: SeedLike = None) -> DrawSet:
    """The fit's posterior draws for ``group`` (``"new"``: an unseen one), equally weighted.

    ``n_draws`` thins to a random subset (faster ranking); ``None`` keeps every draw.
    """
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = group_theta(fit, g, rng=rng)
    post = fit.posterior
    s = int(flat(post["sigma"]).size)
    keep = np.sort(rng.choice(s, n_draws, replace=False)) if n_draws and n_draws < s \
        else np.arange(s)

    def take(name: str) -> np.ndarray | None:
        return flat(post[name])[keep].astype(float) if name in post else None

    nu = take("nu")
    shape = (keep.size, NOISE_REPLICATES)
    eps = (rng.standard_t(np.broadcast_to(nu[:, None], shape)) if nu is not None
           else rng.standard_normal(shape))
    kappa = take("kappa")
    tau0 = take("tau0")
    if kappa is not None and tau0 is None:
        tau0 = np.zeros_like(kappa)
    shape_part = (take("tau0_shape"), take("kappa_shape"))
    drift = tuple(take(k) for k in DRIFT_VARS)
    xi = rng.standard_normal(shape)
    tails = (take(NU_VAR), take(SCALE_VAR)) if NU_VAR in post else None
    if PART_VAR in post:
        raise QueryError("the next-run ranking does not read a Student-t on the shape part "
                         "only (nu_part='shape'); use a Normal or whole-band discrepancy")
    if tails is not None:  # a Student-t discrepancy: one lambda per draw and replicate
        k = shape[1]
        lam = mixing_draws(np.repeat(tails[0], k), rng,
                           None if tails[1] is None else np.repeat(tails[1], k))
        xi = xi * np.sqrt(lam.reshape(shape))
    return DrawSet(fit.law, {k: v[keep] for k, v in theta.items()}, take("sigma"), nu, kappa,
                   tau0, np.zeros(keep.size), fit_box(fit), eps, xi,
                   shape_part if kappa is not None and _all_given(shape_part) else None,
                   drift if _all_given(drift) else None,
                   Reach.from_meta(fit.meta.get("calibration")), tails)


def _all_given(parts: tuple[np.ndarray | None, ...]) -> bool:
    # ``None in (array, ...)`` would compare arrays elementwise: ask by identity
    return all(p is not None for p in parts)


#: Noise replicates per posterior draw in the band at the target (smooths its quantiles).
NOISE_REPLICATES = 16


@dataclass(frozen=True)
class Target:
    """The planned run: ``n_params``, ``n_tokens`` and optionally the target ``loss``."""

    n_params: float
    n_tokens: float
    loss: float | None = None

    @classmethod
    def of(cls, target: Any) -> Target:
        """A ``Target`` from itself, a mapping (``n_params``, ``n_tokens``, ``loss``) or a tuple."""
        if isinstance(target, Target):
            out = target
        elif isinstance(target, Mapping):
            out = cls(target["n_params"], target["n_tokens"], target.get("loss"))
        else:
            out = cls(*target)
        vals = [out.n_params, out.n_tokens] + ([out.loss] if out.loss is not None else [])
        if not all(np.isfinite(float(v)) and float(v) > 0 for v in vals):
            raise QueryError(f"target values must be positive and finite, got {out}")
        return cls(float(out.n_params), float(out.n_tokens),
                   None if out.loss is None else float(out.loss))
