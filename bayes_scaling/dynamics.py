r"""Training dynamics: loss curves ``L(N, S, B)``, critical batch size, whole predicted curves.

The law (Kaplan et al. 2020, section 5 and eqs. 5.4-5.6; Su et al. 2024, "Unraveling the
Mystery of Scaling Laws: Part I", arXiv:2403.06563, who fit it on 1M-60M models and predict the
curves of 2B-33B ones), in nats/token, with ``N`` parameters, ``S`` optimizer steps, ``B`` batch
size in tokens and ``E = S B`` tokens:

.. math::
    L(N, S_{min}) = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S}, \qquad
    B_{crit}(L) = B^* / L^{1/\alpha_B},

    S_{min} = S / (1 + B_{crit}(L)/B), \qquad E_{min} = E / (1 + B/B_{crit}(L)).

``L(N, S, B)`` has ``L`` on both sides; it is the root of a strictly monotone function, found by
:func:`log_loss_nsb` / :func:`solve_step_term` (safeguarded Newton, vectorised). With
``v = log(L - (N_c/N)^alpha_N)`` (the log of the step term),

.. math:: h(v) = v - \alpha_S \log(S_c/S) - \alpha_S \log\bigl(1 + B_{crit}(L(v))/B\bigr) = 0,

:math:`h'(v) \in [1, 1 + \alpha_S/\alpha_B]`: one root, bracketed by
``[alpha_S log(S_c/S), alpha_S log(S_c/S) + alpha_S log1p(B_crit(L_N)/B)]``.

The laws here are plain numpy (queries never import PyMC); the solver takes its array operations
from an ``xp`` namespace so that ``model.py`` builds the same body in PyTensor. There, the
iterations run with gradients stopped and one last Newton step carries them: at the root its
gradient is exactly the implicit-function gradient :math:`-\partial_\theta h / \partial_v h`.
The graph starts each checkpoint's solve from its observed loss (or the default guess, if
closer), so a fixed :data:`GRAPH_ITERATIONS` converge wherever the posterior has mass and the
likelihood is the exact residual ``log L_obs - log L(N, S, B)``, not an errors-in-variables
approximation (as fitting ``L(N, S_min)`` at ``S_min`` computed from the *observed* loss would be).

Curves are held in a :class:`CurveTable` (one row per evaluated checkpoint) with the same
persistence protocol as :class:`~bayes_scaling.data.RunTable`. Queries on a fitted curve law
(:func:`predict_curve`, :func:`steps_needed`, :func:`tokens_needed_at_batch`,
:func:`critical_batch_size`, :func:`optimal_batch_size`) return
:class:`~bayes_scaling.summarize.QueryResult`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CHAIN, DEFAULT_INTERVAL, DEFAULT_PROBS, DRAW, POINT
from bayes_scaling.data import FrameTable, first_seen
from bayes_scaling.errors import DataError, ExtrapolationWarning, QueryError
from bayes_scaling.laws import Law
from bayes_scaling.predict import flat, group_theta, observation_noise, resolve_group
from bayes_scaling.spec import CURVE_LAWS, Prior
from bayes_scaling.summarize import BANDS, QueryResult, check_probs, interval_table

if TYPE_CHECKING:
    from bayes_scaling.fit import ScalingFit

SeedLike = int | np.random.Generator | None

#: Dimension of a curve table (one entry per evaluated checkpoint) and of the curves themselves.
OBS, CURVE = "obs", "curve"
#: Most Newton iterations of the numpy solve (it stops earlier once every point has converged).
MAX_ITERATIONS = 60
#: Iterations inside the PyMC graph, started from each checkpoint's observed loss or the default
#: guess, whichever is closer: near the posterior (within 3%) they converge to 1e-10 in 3, and
#: anywhere in the prior range to 1e-6 in 6 (tests/test_dynamics.py). An unconverged solve
#: would break the match between NUTS's energy and its gradient.
GRAPH_ITERATIONS = 6
#: The numpy solve stops once every ``|h(v)|`` is below this (``v`` is a log: relative error).
TOLERANCE = 1e-13
#: Within this ``|h|`` of the root Newton steps are always taken (quadratic convergence).
NEAR_ROOT = 1e-6


def _np_done(h: np.ndarray) -> bool:
    return bool(np.all(np.abs(h) < TOLERANCE))


#: Array operations of the solver on numpy (``model.py`` passes PyTensor's).
NUMPY_SOLVER_OPS = SimpleNamespace(exp=np.exp, log=np.log, logaddexp=np.logaddexp,
                                   where=np.where, stop_gradient=lambda x: x, done=_np_done)


# --------------------------------------------------------------------------------------------
# The law in natural form (numpy; readers, tests and queries)
# --------------------------------------------------------------------------------------------
def b_crit(loss, *, b_star, alpha_b):
    r"""Critical batch size in tokens at loss ``loss`` (Kaplan et al. 2020, eq. 5.4).

    .. math:: B_{crit}(L) = B^* / L^{1/\alpha_B}
    """
    return b_star / loss ** (1.0 / alpha_b)


def s_min(steps, batch, loss, *, b_star, alpha_b):
    r"""Minimum steps to reach ``loss`` (at ``B >> B_crit``) (Kaplan et al. 2020, eq. 5.4).

    .. math:: S_{min} = S / (1 + B_{crit}(L)/B)
    """
    return steps / (1.0 + b_crit(loss, b_star=b_star, alpha_b=alpha_b) / batch)


def e_min(tokens, batch, loss, *, b_star, alpha_b):
    r"""Minimum tokens to reach ``loss`` (at ``B << B_crit``) (Kaplan et al. 2020, eq. 5.5).

    .. math:: E_{min} = E / (1 + B/B_{crit}(L))
    """
    return tokens / (1.0 + batch / b_crit(loss, b_star=b_star, alpha_b=alpha_b))


def l_n_smin(n, s_min_, *, n_c, alpha_n, s_c, alpha_s):
    r"""Loss after ``s_min_`` minimum steps at size ``n`` (Kaplan et al. 2020, eq. 5.6).

    .. math:: L(N, S_{min}) = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S}
    """
    return (n_c / n) ** alpha_n + (s_c / s_min_) ** alpha_s


def _softplus(x, xp):
    return xp.logaddexp(0.0 * x, x)


def solve_step_term(log_floor, a, c, *, alpha_s, alpha_b, xp=NUMPY_SOLVER_OPS,
                    iterations: int = MAX_ITERATIONS, log_start=None):
    r"""Log of the step term ``v = log(L - L_N)`` at the root of :math:`h(v) = 0`.

    Parameters
    ----------
    log_floor
        ``log L_N = alpha_N log(N_c/N)``: log of the loss at infinitely many steps.
    a
        ``alpha_S log(S_c/S)``: ``v`` when ``B >> B_crit`` (the lower end of the bracket).
    c
        ``log(B*/B)``.
    alpha_s, alpha_b
        Exponents.
    xp
        Array operations (``exp, log, logaddexp, where, stop_gradient, done``).
    iterations
        Most safeguarded Newton steps (a bisection step whenever Newton leaves the bracket);
        ``xp.done(h)`` may stop earlier. A last Newton step follows with gradients on.
    log_start
        Optional log loss to start from, where it is closer to the root than the default
        guess (e.g. the observed loss of each checkpoint, within a few percent of the root
        wherever the posterior has mass: there 2-3 steps converge; far from it, the default
        guess converges in 6 over the whole prior range).

    Returns
    -------
    array_like
        ``v``, same shape as the broadcast inputs.
    """
    r = alpha_s / alpha_b

    def h_and_slope(v):
        log_l = xp.logaddexp(log_floor, v)
        logk = c - log_l / alpha_b                       # log(B_crit(L) / B)
        h = v - a - alpha_s * _softplus(logk, xp)
        slope = 1.0 + r * xp.exp(logk - _softplus(logk, xp) + v - log_l)
        return h, slope

    def clip(x):
        return xp.where(x > lo, xp.where(x < hi, x, hi), lo)

    lo = a + 0.0 * log_floor + 0.0 * c
    hi = a + alpha_s * _softplus(c - log_floor / alpha_b, xp)
    v = clip((a + alpha_s * c) / (1.0 + r))               # B << B_crit and L ~ step term
    if log_start is not None:  # start from log(L_start - L_N) where that is the better guess
        excess = xp.exp(log_start) - xp.exp(log_floor)
        v_start = clip(xp.where(excess > 0, xp.log(xp.where(excess > 0, excess, 1.0)), lo))
        h_guess, _ = h_and_slope(v)
        h_start, _ = h_and_slope(v_start)
        lo = xp.where(h_guess <= 0, xp.where(v > lo, v, lo), lo)
        hi = xp.where(h_guess >= 0, xp.where(v < hi, v, hi), hi)
        lo = xp.where(h_start <= 0, xp.where(v_start > lo, v_start, lo), lo)
        hi = xp.where(h_start >= 0, xp.where(v_start < hi, v_start, hi), hi)
        v = xp.where(h_start * h_start < h_guess * h_guess, v_start, v)
    h_before = 1e30 + 0.0 * lo
    for _ in range(iterations):
        h, slope = h_and_slope(v)
        if xp.done(h):
            break
        lo = xp.where(h <= 0, v, lo)
        hi = xp.where(h >= 0, v, hi)
        newton = v - h / slope
        # Newton, unless it leaves the bracket or, still far from the root, the last step did
        # not halve |h| (a sharp bend of B_crit(L), small alpha_B, makes Newton overshoot by up
        # to alpha_S/alpha_B): then bisect
        h2 = h * h
        fast = (h2 <= 0.25 * h_before * h_before) + (h2 < NEAR_ROOT**2) > 0
        v = xp.where((newton >= lo) * (newton <= hi) * fast, newton, 0.5 * (lo + hi))
        h_before = h
    v = xp.stop_gradient(v)
    h, slope = h_and_slope(v)
    return v - h / slope


def log_loss_nsb(log_n, log_s, log_b, *, log_n_c, alpha_n, log_s_c, alpha_s, log_b_star,
                 alpha_b, xp=NUMPY_SOLVER_OPS, iterations: int = MAX_ITERATIONS,
                 log_start=None):
    r"""``log L(N, S, B)``: the loss after ``S`` steps of batch ``B`` tokens at size ``N``.

    Solves :math:`L = (N_c/N)^{\alpha_N} + (S_c/S_{min}(S, B, L))^{\alpha_S}` for ``L``
    (Kaplan et al. 2020, section 5; Su et al. 2024) with :func:`solve_step_term`. Inputs are
    natural logs; broadcasting follows numpy (or xarray, or PyTensor through ``xp``).
    """
    log_floor = alpha_n * (log_n_c - log_n)
    v = solve_step_term(log_floor, alpha_s * (log_s_c - log_s), log_b_star - log_b,
                        alpha_s=alpha_s, alpha_b=alpha_b, xp=xp, iterations=iterations,
                        log_start=log_start)
    return xp.logaddexp(log_floor, v)


def loss_nsb(n, steps, batch, *, n_c, alpha_n, s_c, alpha_s, b_star, alpha_b):
    """``L(N, S, B)`` in nats/token from natural constants (see :func:`log_loss_nsb`)."""
    return np.exp(log_loss_nsb(np.log(n), np.log(steps), np.log(batch), log_n_c=np.log(n_c),
                               alpha_n=alpha_n, log_s_c=np.log(s_c), alpha_s=alpha_s,
                               log_b_star=np.log(b_star), alpha_b=alpha_b))


def steps_to_loss(n, target, batch, *, n_c, alpha_n, s_c, alpha_s, b_star, alpha_b):
    r"""Steps of batch ``batch`` tokens a model of ``n`` parameters needs to reach ``target``.

    Closed form (no solve): :math:`S = S_{min}(L^*) (1 + B_{crit}(L^*)/B)` with
    :math:`S_{min}(L^*) = S_c (L^* - (N_c/N)^{\alpha_N})^{-1/\alpha_S}`; ``inf`` where the target
    is at or below the size's floor ``(N_c/N)^alpha_N``. ``batch = inf`` gives ``S_min``.
    """
    gap = np.asarray(target - (n_c / n) ** alpha_n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        smin = np.where(gap > 0, s_c * np.where(gap > 0, gap, 1.0) ** (-1.0 / alpha_s), np.inf)
        return smin * (1.0 + b_crit(target, b_star=b_star, alpha_b=alpha_b) / batch)


def uncentre(theta_c: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
    r"""The law's natural log constants from the sampler's centred ones.

    The sampler works with the log of each term at the ladder's centre (``m_x`` the mean log of
    ``x`` over the curve points): ``log_n_c`` is sampled as :math:`\alpha_N(\log N_c - m_N)`,
    ``log_s_c`` as :math:`\alpha_S(\log S_c - m_S)` and ``log_b_star`` as
    :math:`\log B^* - m_L/\alpha_B - m_B` (the log of ``B_crit/B`` at the centre). This removes
    the curved ridges between the constants and their exponents (only the products are pinned
    by the loss level) without changing the model.
    """
    out = dict(theta_c)
    out["log_n_c"] = centre["n"] + theta_c["log_n_c"] / theta_c["alpha_n"]
    out["log_s_c"] = centre["s"] + theta_c["log_s_c"] / theta_c["alpha_s"]
    out["log_b_star"] = theta_c["log_b_star"] + centre["b"] + centre["loss"] / theta_c["alpha_b"]
    return out


def centre_constants(theta: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
    """Inverse of :func:`uncentre`."""
    out = dict(theta)
    out["log_n_c"] = theta["alpha_n"] * (theta["log_n_c"] - centre["n"])
    out["log_s_c"] = theta["alpha_s"] * (theta["log_s_c"] - centre["s"])
    out["log_b_star"] = theta["log_b_star"] - centre["b"] - centre["loss"] / theta["alpha_b"]
    return out


#: Natural-scale size of a centred offset: ``d(natural)/d(centred)`` is ``1/exponent`` (or 1).
OFFSET_SCALE: dict[str, str | None] = {"log_n_c": "alpha_n", "log_s_c": "alpha_s",
                                       "log_b_star": None}


def _log_loss_law(log_n, log_s, log_b, *, xp=NUMPY_SOLVER_OPS, **theta):
    return log_loss_nsb(log_n, log_s, log_b, xp=xp, **theta)


#: The curve law, as a :class:`~bayes_scaling.laws.Law` (inputs ``n, s, b``); not in ``LAWS``,
#: whose laws are ``L(N, D)`` laws.
DYNAMICS = Law(
    "dynamics", ("n", "s", "b"), CURVE_LAWS["dynamics"], log_mean=_log_loss_law,
    citation="Kaplan et al. (2020), arXiv:2001.08361, section 5; Su et al. (2024), "
             "arXiv:2403.06563",
    formula="L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S, S_min = S/(1 + B_crit(L)/B), "
            "B_crit(L) = B*/L^(1/alpha_B)",
)
#: Registry of curve laws (the name a model spec's ``law`` gives).
DYNAMICS_LAWS: dict[str, Law] = {"dynamics": DYNAMICS}


# --------------------------------------------------------------------------------------------
# Curve tables
# --------------------------------------------------------------------------------------------
#: Default warm-up rule: drop checkpoints before this fraction of each curve's last step ...
WARMUP_FRACTION = 0.1
#: ... and before this many steps (both apply; 0 switches the absolute threshold off).
MIN_STEPS = 0
#: Default thinning: at most this many checkpoints per curve, log-spaced in steps ...
MAX_POINTS_PER_CURVE = 30
#: ... and at most this many in all (fewer per curve until it fits, never below 3 per curve),
#: so a fit stays fast: about 1 ms per NUTS gradient at 3,000 points on one core.
MAX_POINTS = 3000

CURVE_REQUIRED: tuple[str, ...] = ("run_id", "n_params", "steps", "batch_size_tokens", "loss")
CURVE_OPTIONAL: tuple[str, ...] = ("learning_rate", "context_length", "n_params_nonembedding")
#: Columns of a :class:`CurveTable` frame, in order.
CURVE_COLUMNS: tuple[str, ...] = ("run_id", "group", *CURVE_REQUIRED[1:], *CURVE_OPTIONAL)
CURVE_ALIASES: dict[str, tuple[str, ...]] = {
    "run_id": ("run", "run_name", "curve", "curve_id"),
    "group": (),
    "n_params": ("n", "params", "parameters", "model_size", "num_params", "n_parameters"),
    "steps": ("step", "n_steps", "current_steps", "iteration", "iter"),
    "batch_size_tokens": ("batch_tokens", "batch_size", "b"),
    "loss": ("l", "eval_loss", "val_loss"),
    "learning_rate": ("lr", "peak_lr"),
    "context_length": ("seq_len", "sequence_length"),
    "n_params_nonembedding": ("n_no_emb", "n_nonembedding", "nonembedding_params",
                              "non_embedding_params"),
}
_STRING_COLUMNS = ("run_id", "group")
_MAX_REPORTED = 10


@dataclass(frozen=True, eq=False, repr=False)
class CurveTable(FrameTable):
    """Validated loss curves: one row per evaluated checkpoint of a training run.

    Build it with :func:`load_curves` (which validates, drops the warm-up and thins). Compare
    tables by :meth:`fingerprint`.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns of :data:`CURVE_COLUMNS` (the optional ones where known), index ``0 .. n-1``;
        the rows of one curve are contiguous with increasing ``steps``.
    source : str
        Where the curves came from.
    param_count : {"total", "nonembedding"}
        What ``n_params`` counts.
    rule : mapping
        The warm-up and thinning rule applied (``warmup_fraction``, ``min_steps``,
        ``max_points_per_curve``) and ``n_points_read`` before it.
    """

    frame: pd.DataFrame
    source: str
    param_count: str = "total"
    rule: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the frame has the canonical shape."""
        self._check_frame("curve", ("run_id", "group", *CURVE_REQUIRED[1:]), CURVE_COLUMNS,
                          "load_curves")

    def __repr__(self) -> str:
        """Summarize without printing every point."""
        return (f"CurveTable({self.n_points} points, {self.n_curves} curves, {self.n_groups} "
                f"groups, param_count={self.param_count!r}, source={self.source!r})")

    n = property(lambda self: self._floats("n_params"), doc="N, parameters (per point).")
    s = property(lambda self: self._floats("steps"), doc="S, optimizer steps (per point).")
    b = property(lambda self: self._floats("batch_size_tokens"),
                 doc="B, batch size in tokens (per point).")
    loss = property(lambda self: self._floats("loss"), doc="Loss in nats/token (per point).")
    tokens = property(lambda self: self.s * self.b, doc="E = S B, tokens seen (per point).")
    log_n = property(lambda self: np.log(self.n), doc="log N.")
    log_s = property(lambda self: np.log(self.s), doc="log S.")
    log_b = property(lambda self: np.log(self.b), doc="log B.")
    log_loss = property(lambda self: np.log(self.loss), doc="log loss.")

    @property
    def curve_ids(self) -> tuple[str, ...]:
        """Distinct curves, in order of first appearance."""
        return first_seen(self.frame["run_id"])[0]

    @property
    def curve_index(self) -> np.ndarray:
        """Position of each point's curve in :attr:`curve_ids` (int64)."""
        return first_seen(self.frame["run_id"])[1]

    n_points = property(lambda self: len(self.frame), doc="Number of checkpoints (rows).")
    n_curves = property(lambda self: len(self.curve_ids), doc="Number of curves.")
    n_runs = property(lambda self: self.n_curves, doc="Number of training runs (= curves).")

    def curves(self) -> pd.DataFrame:
        """One row per curve: ``run_id, group, n_params, batch_size_tokens, first_step,
        last_step, n_points, last_loss``."""
        g = self.frame.groupby("run_id", sort=False)
        return pd.DataFrame({
            "group": g["group"].first(), "n_params": g["n_params"].first(),
            "batch_size_tokens": g["batch_size_tokens"].first(),
            "first_step": g["steps"].first(), "last_step": g["steps"].last(),
            "n_points": g.size(), "last_loss": g["loss"].last()}).reset_index()

    def fingerprint(self) -> str:
        """Sha256 of the content (columns, values, ``param_count`` and ``rule``), 64 hex digits."""
        cols = [c for c in CURVE_COLUMNS if c in self.frame.columns]
        head = {"format": "bayes_scaling.curves/1", "param_count": self.param_count,
                "n_points": self.n_points, "columns": cols, "rule": dict(self.rule)}
        digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
        for col in cols:
            if col in _STRING_COLUMNS:
                values = [str(v) for v in self.frame[col]]
                digest.update(json.dumps(values, ensure_ascii=False).encode("utf-8"))
            else:
                x = self._floats(col)
                x[np.isnan(x)] = np.nan
                digest.update(x.astype("<f8").tobytes())
        return digest.hexdigest()

    def to_xarray(self) -> xr.Dataset:
        """The table along dim ``obs`` (netCDF-safe); attrs ``table="curves"``, the rule, hash."""
        data_vars = {}
        for col in self.frame.columns:
            values = (np.array([str(v) for v in self.frame[col]], dtype=str)
                      if col in _STRING_COLUMNS else self._floats(col))
            data_vars[col] = (OBS, values)
        attrs = {"table": "curves", "source": self.source, "param_count": self.param_count,
                 "rule_json": json.dumps(dict(self.rule), sort_keys=True),
                 "fingerprint": self.fingerprint()}
        return xr.Dataset(data_vars, coords={OBS: np.arange(self.n_points)}, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> CurveTable:
        """Rebuild a table written by :meth:`to_xarray`; DataError if it fails its hash."""
        source = str(ds.attrs.get("source", "<xarray>"))
        if OBS not in ds.dims or ds.attrs.get("table") != "curves":
            raise DataError(f"{source}: not a curve table (no {OBS!r} dimension)")
        frame = {col: ([str(v) for v in ds[col].values] if col in _STRING_COLUMNS
                       else np.asarray(ds[col].values, dtype=np.float64))
                 for col in CURVE_COLUMNS if col in ds.data_vars}
        rule = json.loads(str(ds.attrs.get("rule_json", "{}")))
        table = cls(pd.DataFrame(frame), source, str(ds.attrs.get("param_count", "total")), rule)
        stored = ds.attrs.get("fingerprint")
        if stored is not None and str(stored) != table.fingerprint():
            raise DataError(f"{source}: curve table does not match its stored fingerprint")
        return table

    def subset(self, mask_or_index: Any) -> CurveTable:
        """Keep some points: a boolean mask over points, or integer positions."""
        sel = np.asarray(mask_or_index)
        if sel.dtype == bool:
            if sel.shape != (self.n_points,):
                raise DataError(f"{self.source}: mask of shape {sel.shape} for "
                                f"{self.n_points} points")
            sel = np.flatnonzero(sel)
        if sel.size == 0:
            raise DataError(f"{self.source}: subset selects no points")
        frame = self.frame.iloc[sel.astype(np.int64)].reset_index(drop=True)
        return CurveTable(frame, self.source, self.param_count, self.rule)

    def range_summary(self) -> dict[str, float | int]:
        """Span of the curves: ``n_min, n_max, s_min, s_max, b_min, b_max, loss_min, loss_max``,
        ``n_distinct, b_distinct, n_curves, n_points, n_groups``."""
        out: dict[str, float | int] = {}
        for key, x in (("n", self.n), ("s", self.s), ("b", self.b), ("loss", self.loss)):
            out[f"{key}_min"], out[f"{key}_max"] = float(x.min()), float(x.max())
        out["n_distinct"], out["b_distinct"] = len(np.unique(self.n)), len(np.unique(self.b))
        out["n_curves"], out["n_points"] = self.n_curves, self.n_points
        out["n_groups"] = self.n_groups
        return out


def thin_indices(steps: np.ndarray, k: int) -> np.ndarray:
    """Positions of at most ``k`` checkpoints of one curve, spread evenly in ``log(steps)``.

    Keeps the first and last checkpoint and, for each point of a log-spaced grid between them,
    the nearest checkpoint (so dense late stretches do not outweigh the early curve).
    """
    steps = np.asarray(steps, dtype=float)
    if k <= 0 or steps.size <= k:
        return np.arange(steps.size)
    grid = np.linspace(np.log(steps[0]), np.log(steps[-1]), k)
    nearest = np.abs(np.log(steps)[None, :] - grid[:, None]).argmin(axis=1)
    return np.unique(np.concatenate([[0, steps.size - 1], nearest]))


def warmup_mask(frame: pd.DataFrame, warmup_fraction: float, min_steps: float) -> np.ndarray:
    """Checkpoints kept by the warm-up rule: ``steps >= max(min_steps, f * last step of run)``.

    The rule of Kaplan et al. (2020) and Su et al. (2024), who fit only past the learning-rate
    warm-up and the early transient, in a form a user can change: ``f = warmup_fraction``
    (default :data:`WARMUP_FRACTION`) of each run's own length, and an absolute
    ``min_steps`` (default :data:`MIN_STEPS`). A run's last checkpoint always satisfies the
    fraction rule, so runs with a final loss only are kept unless ``min_steps`` excludes them.
    """
    last = frame.groupby("run_id", sort=False)["steps"].transform("max").to_numpy(float)
    steps = frame["steps"].to_numpy(float)
    return (steps >= warmup_fraction * last) & (steps >= min_steps)


def _normalize(name: object) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def _read_curve_source(source: Any) -> tuple[pd.DataFrame, list[str], str]:
    """A copy of the raw table, a label per row (``line k`` / ``row k``) and the source name."""
    if isinstance(source, pd.DataFrame):
        raw = source.reset_index(drop=True)
        return raw, [f"row {i}" for i in source.index], "<DataFrame>"
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path or a DataFrame, not {type(source).__name__}")
    path, name = Path(source), str(source)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{name}: file not found")
    try:
        if suffix in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv"):
            raw = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",",
                              dtype={"run": str, "run_id": str, "group": str})
        else:
            raise DataError(f"{name}: unsupported file type {suffix or '(none)'!r}; use .csv, "
                            ".tsv, .parquet or .pq")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{name}: cannot read: {' '.join(str(exc).split())}") from exc
    if raw.empty:
        raise DataError(f"{name}: no rows")
    offset = 0 if suffix in (".parquet", ".pq") else 2
    word = "row" if offset == 0 else "line"
    return raw.reset_index(drop=True), [f"{word} {i + offset}" for i in range(len(raw))], name


def _map_curve_columns(raw: pd.DataFrame, name: str, group_col: str | None) -> pd.DataFrame:
    """Rename recognised columns to canonical names (other columns are kept for ``query``)."""
    norm = {c: _normalize(c) for c in raw.columns}
    mapping: dict[Any, str] = {}
    for canon, aliases in CURVE_ALIASES.items():
        if canon == "group" and group_col is not None:
            continue
        hits = ([c for c in raw.columns if norm[c] == canon]
                or [c for c in raw.columns if norm[c] in aliases])
        if len(hits) > 1:
            raise DataError(f"{name}: columns {hits} all mean {canon}; rename all but one")
        if hits:
            mapping[hits[0]] = canon
    work = raw.rename(columns=mapping)
    if group_col is not None:
        if group_col not in raw.columns:
            raise DataError(f"{name}: group column {group_col!r} not found; found columns: "
                            f"{', '.join(map(str, raw.columns))}")
        work["group"] = raw[group_col]
    missing = [c for c in CURVE_REQUIRED if c not in work.columns]
    if missing:
        raise DataError(f"{name}: missing required column(s) {', '.join(missing)} for loss "
                        f"curves; found columns: {', '.join(map(str, raw.columns))}")
    return work


def _parse_curve_rows(work: pd.DataFrame, labels: list[str], name: str) -> pd.DataFrame:
    """Numeric columns as float64; one DataError naming every bad row."""
    problems: dict[int, list[str]] = {}
    for col in (*CURVE_REQUIRED[1:], *CURVE_OPTIONAL):
        if col not in work.columns:
            continue
        values = pd.to_numeric(work[col], errors="coerce").to_numpy(dtype=float)
        required = col in CURVE_REQUIRED
        for pos in np.flatnonzero(~(values > 0) | ~np.isfinite(values)):
            cell = work[col].iloc[pos]
            if not required and pd.isna(cell):
                continue
            why = "is missing" if pd.isna(cell) else (
                "is not a number" if np.isnan(values[pos]) else f"<= 0 or infinite ({cell})")
            problems.setdefault(int(pos), []).append(f"{col} {why}")
        work[col] = values
    for col in _STRING_COLUMNS:
        if col == "group" and col not in work.columns:
            work[col] = "all"
            continue
        text = [None if pd.isna(v) else str(v).strip() or None for v in work[col]]
        for pos in [i for i, v in enumerate(text) if v is None]:
            problems.setdefault(pos, []).append(f"{col} is missing")
        work[col] = text
    _raise_if_bad(problems, labels, name)
    return work


def _raise_if_bad(problems: Mapping[int, list[str]], labels: list[str], name: str) -> None:
    if not problems:
        return
    pos = sorted(problems)
    shown = "; ".join(f"{labels[p]}: {', '.join(problems[p])}" for p in pos[:_MAX_REPORTED])
    more = f" (and {len(pos) - _MAX_REPORTED} more)" if len(pos) > _MAX_REPORTED else ""
    raise DataError(" ".join(f"{name}: {len(pos)} bad row{'s' * (len(pos) > 1)}; {shown}{more}"
                             .split()))


def _check_curves(work: pd.DataFrame, labels: list[str], name: str) -> None:
    """Within a run: one size, one batch size, one group; steps strictly increasing."""
    problems: dict[int, list[str]] = {}
    for run, rows in work.groupby("run_id", sort=False).groups.items():
        rows = np.asarray(rows)
        part = work.loc[rows]
        for col, what in (("n_params", "model size"), ("batch_size_tokens", "batch size"),
                          ("group", "group")):
            first = part[col].iloc[0]
            for pos in rows[(part[col] != first).to_numpy()]:
                problems.setdefault(int(pos), []).append(
                    f"run {run!r} changes {what} ({first} at {labels[rows[0]]}); one {what} "
                    "per run")
        steps = part["steps"].to_numpy(float)
        for k in np.flatnonzero(np.diff(steps) <= 0):
            problems.setdefault(int(rows[k + 1]), []).append(
                f"steps of run {run!r} do not increase ({steps[k + 1]:g} after {steps[k]:g})")
    _raise_if_bad(problems, labels, name)


def load_curves(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    group_col: str | None = None,
    param_count: str = "total",
    query: str | None = None,
    warmup_fraction: float = WARMUP_FRACTION,
    min_steps: float = MIN_STEPS,
    max_points_per_curve: int | None = MAX_POINTS_PER_CURVE,
    max_points: int | None = MAX_POINTS,
) -> CurveTable:
    r"""Read, validate, drop the warm-up of and thin a table of loss curves.

    One row per (run, evaluation step): ``run_id`` (or ``run``: names the curve), ``n_params``,
    ``steps``, ``batch_size_tokens``, ``loss`` (nats/token); optional ``group``,
    ``learning_rate``, ``context_length``, ``n_params_nonembedding``. A table of final losses
    (one row per run) is a table of one-point curves.

    Parameters
    ----------
    source : str, path or pandas.DataFrame
        ``.csv``, ``.tsv``, ``.parquet``/``.pq`` or a DataFrame (not modified).
    group_col : str, optional
        Column naming each run's data distribution (default: ``group`` if present, else all
        runs form one group ``"all"``).
    param_count : {"total", "nonembedding"}
        ``"nonembedding"`` takes N from ``n_params_nonembedding`` (Kaplan et al. 2020 count).
    query : str, optional
        A :meth:`pandas.DataFrame.query` filter on the canonical (and any other) columns,
        applied before validation, e.g. ``"learning_rate == 0.002"``.
    warmup_fraction, min_steps : float
        Warm-up rule (:func:`warmup_mask`): keep checkpoints with
        ``steps >= max(min_steps, warmup_fraction * last step of the run)``.
    max_points_per_curve : int or None
        Thinning (:func:`thin_indices`): at most this many checkpoints per curve, log-spaced in
        steps; ``None`` keeps all.
    max_points : int or None
        Cap on the whole table: the per-curve limit is lowered (not below 3) until the table
        fits; ``None`` for no cap. The limit used is recorded in ``rule``.

    Returns
    -------
    CurveTable

    Raises
    ------
    DataError
        One line naming the source and every bad row with its reason: non-positive or missing
        values, a run whose size, batch size or group changes, steps that do not increase.
    """
    if param_count not in ("total", "nonembedding"):
        raise DataError(f"load_curves: unknown param_count {param_count!r}")
    if not 0.0 <= float(warmup_fraction) < 1.0 or float(min_steps) < 0:
        raise DataError("load_curves: warmup_fraction must be in [0, 1) and min_steps >= 0")
    raw, labels, name = _read_curve_source(source)
    work = _map_curve_columns(raw, name, group_col)
    if query is not None:
        from bayes_scaling.data import check_query

        check_query(query, name)  # comparisons and arithmetic only: nothing executes
        try:
            work = work.query(query, engine="python")
        except Exception as exc:
            raise DataError(f"{name}: query {query!r} failed: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())}") from None
        if work.empty:
            raise DataError(f"{name}: query {query!r} selected no rows")
        labels = [labels[i] for i in work.index]
        work = work.reset_index(drop=True)
    work = _parse_curve_rows(work, labels, name)
    if param_count == "nonembedding":
        if "n_params_nonembedding" not in work.columns or work[
                "n_params_nonembedding"].isna().any():
            raise DataError(f"{name}: param_count='nonembedding' needs n_params_nonembedding "
                            "on every row")
        work["n_params"] = work["n_params_nonembedding"]
    _check_curves(work, labels, name)
    rule = {"warmup_fraction": float(warmup_fraction), "min_steps": float(min_steps),
            "max_points_per_curve": max_points_per_curve, "max_points": max_points,
            "n_points_read": len(work)}
    return _apply_rule(work, name, param_count, rule)


def _per_curve_limit(sizes: np.ndarray, per_curve: int | None, total: int | None) -> int:
    """The largest per-curve limit (<= ``per_curve``, >= 3) keeping the sum under ``total``."""
    k = int(per_curve) if per_curve else int(sizes.max())
    while total and k > 3 and np.minimum(sizes, k).sum() > total:
        k -= 1
    return k


def _apply_rule(work: pd.DataFrame, name: str, param_count: str,
                rule: dict[str, Any]) -> CurveTable:
    work = work.loc[warmup_mask(work, rule["warmup_fraction"], rule["min_steps"])]
    if work.empty:
        raise DataError(f"{name}: the warm-up rule (warmup_fraction={rule['warmup_fraction']}, "
                        f"min_steps={rule['min_steps']}) leaves no checkpoints")
    groups = list(work.groupby("run_id", sort=False).groups.values())
    k = _per_curve_limit(np.array([len(g) for g in groups]), rule["max_points_per_curve"],
                         rule["max_points"])
    keep = [np.asarray(g)[thin_indices(work.loc[g, "steps"].to_numpy(float), k)]
            for g in groups]
    cols = [c for c in CURVE_COLUMNS if c in work.columns]
    frame = work.loc[np.concatenate(keep), cols].reset_index(drop=True)
    return CurveTable(frame, name, param_count, {**rule, "points_per_curve_used": k})


def synthetic_curves(
    params: Mapping[str, float],
    *,
    n_sizes: Sequence[float] = (1e6, 3e6, 1e7, 3e7, 1e8),
    batch_sizes: Sequence[float] = (2**16, 2**18, 2**20, 2**22),
    steps: Sequence[float] = tuple(np.geomspace(300, 1e5, 25)),
    noise: float = 0.005,
    curve_sd: float = 0.0,
    group_offsets: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 0,
) -> CurveTable:
    """Loss curves drawn from the law with natural constants ``params`` (for tests, benchmarks).

    One curve per (group, size, batch size), evaluated at ``steps``; log loss gets a per-curve
    Normal offset of sd ``curve_sd`` and per-point Normal noise of sd ``noise``.
    ``group_offsets`` maps a group to additive offsets on the log constants
    (``{"b": {"log_n_c": 0.5}}``). No warm-up rule or thinning is applied.
    """
    rng = np.random.default_rng(seed)
    base = {p: float(np.log(params[p[4:]]) if p.startswith("log_") else params[p])
            for p in DYNAMICS.params}
    s = np.asarray(steps, dtype=float)
    rows = []
    for g, offs in (group_offsets or {"all": {}}).items():
        theta = {p: base[p] + offs.get(p, 0.0) for p in DYNAMICS.params}
        for n in n_sizes:
            for b in batch_sizes:
                mu = log_loss_nsb(np.log(n), np.log(s), np.log(b), **theta)
                loss = np.exp(mu + curve_sd * rng.standard_normal() +
                              noise * rng.standard_normal(s.size))
                rows.append(pd.DataFrame({"run_id": f"{g}/N{n:.3g}/B{b:.3g}", "group": g,
                                          "n_params": n, "steps": s, "batch_size_tokens": b,
                                          "loss": loss}))
    return load_curves(pd.concat(rows, ignore_index=True), warmup_fraction=0.0,
                       max_points_per_curve=None, max_points=None)


#: Prior of ``sigma_curve``, the curve-to-curve sd of log loss (a run's whole curve sits above
#: or below the law: seed, learning rate, schedule), used when a fit has curve effects.
CURVE_SD_PRIOR = Prior("HalfNormal", {"sigma": 0.03})
#: Up to this many curve offsets the sampler adapts a dense mass matrix (``model.py``).
DENSE_MAX_CURVES = 100


def input_centre(curves: CurveTable) -> dict[str, float]:
    """Mean log N, S, B and loss of the curve points: the centre the sampler's constants use."""
    return {"n": float(np.mean(curves.log_n)), "s": float(np.mean(curves.log_s)),
            "b": float(np.mean(curves.log_b)), "loss": float(np.mean(curves.log_loss))}


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------
#: NUTS target acceptance of curve fits: with one batch size, B_crit's constants are barely
#: identified and a few divergences appear at 0.9 on real ladders (benchmarks/bench_dynamics.py).
TARGET_ACCEPT = 0.95
#: Random starts (drawn from the priors, besides the prior medians) of :func:`point_fit`.
POINT_FIT_STARTS = 12
#: Spread of the chains' start points around the point fit (in prior sds; exponents: relative).
START_SPREAD = 0.05


def _prior_draws(prior: Prior, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draws from a spec prior (numpy; the distributions :mod:`bayes_scaling.spec` allows)."""
    k = prior.kwargs
    if prior.dist in ("Normal", "TruncatedNormal"):
        x = rng.normal(k["mu"], k["sigma"], size)
        return np.clip(x, k.get("lower", -np.inf), k.get("upper", np.inf))
    if prior.dist == "LogNormal":
        return np.exp(rng.normal(k["mu"], k["sigma"], size))
    if prior.dist == "HalfNormal":
        return np.abs(rng.normal(0.0, k["sigma"], size))
    if prior.dist == "Gamma":
        return rng.gamma(k["alpha"], 1.0 / k["beta"], size)
    return rng.exponential(1.0 / k["lam"], size)


def point_fit(spec: Any, curves: CurveTable, *, starts: int = POINT_FIT_STARTS,
              random_seed: SeedLike = None) -> dict[str, float]:
    """Robust least-squares fit of the centred constants to log loss, best of several starts.

    A start point for NUTS, not an answer (DESIGN.md): curve data can hold far local optima
    (e.g. a tiny ``alpha_B`` with a huge ``B*``) where a chain started at random may settle.
    Starts: the prior medians and ``starts`` draws from the priors; soft-L1 loss (scale 0.02 in
    log loss). Returns the centred constants (the sampler's scale) and ``rms``, the robust
    residual scale.
    """
    from scipy.optimize import least_squares

    rng = np.random.default_rng(random_seed)
    params, centre = DYNAMICS.params, input_centre(curves)
    positive = [not p.startswith("log_") for p in params]
    draws = np.stack([_prior_draws(spec.priors[p], rng, 4001) for p in params], axis=1)
    inits = np.vstack([np.median(draws, axis=0), draws[:starts]])
    inits[:, positive] = np.log(inits[:, positive])

    def resid(x: np.ndarray) -> np.ndarray:
        theta = {p: float(np.exp(v) if pos else v)
                 for p, v, pos in zip(params, x, positive, strict=True)}
        with np.errstate(all="ignore"):
            mu = log_loss_nsb(curves.log_n, curves.log_s, curves.log_b,
                              **uncentre(theta, centre), log_start=curves.log_loss)
        r = curves.log_loss - mu
        return np.where(np.isfinite(r), r, 1e3)

    best = min((least_squares(resid, x0, loss="soft_l1", f_scale=0.02, max_nfev=300)
                for x0 in inits), key=lambda res: res.cost)
    out = {p: float(np.exp(v) if pos else v)
           for p, v, pos in zip(params, best.x, positive, strict=True)}
    r = resid(best.x)
    out["rms"] = float(1.4826 * np.median(np.abs(r - np.median(r))))
    return out


def start_points(spec: Any, curves: CurveTable, model: Any, chains: int,
                 rng: np.random.Generator) -> list[dict[str, float]]:
    """One start per chain near the multi-start :func:`point_fit`, for the sampler."""
    fit0 = point_fit(spec, curves, random_seed=rng)
    out = []
    for _ in range(chains):
        point: dict[str, float] = {}
        for p in DYNAMICS.params:
            name = next((n for n in (f"{p}_c", f"{p}_c_pop") if n in model.named_vars), None)
            if name is None:
                continue
            z = START_SPREAD * rng.standard_normal()
            point[name] = (fit0[p] * np.exp(z) if not p.startswith("log_")
                           else fit0[p] + z * spec.priors[p].kwargs.get("sigma", 1.0))
        point["sigma"] = max(fit0["rms"], 1e-4) * np.exp(START_SPREAD * rng.standard_normal())
        out.append(point)
    return out


def posterior_var_names(spec: Any, curves: CurveTable, curve_effects: bool) -> list[str]:
    """Posterior variables a curve fit keeps (natural constants and the noise model)."""
    law = DYNAMICS_LAWS[spec.law]
    names = list(law.params)
    if curves.n_groups > 1:
        for p in spec.hierarchy.varying:
            names += [f"{p}_pop", f"{p}_tau"]
    names.append("sigma")
    if spec.likelihood.family == "studentt":
        names.append("nu")
    if curve_effects:
        names.append("sigma_curve")
    return names


def fit_dynamics(
    model: Any,
    curves: CurveTable,
    *,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    backend: str | None = None,
    target_accept: float = TARGET_ACCEPT,
    random_seed: int | np.random.Generator | None = None,
    on_bad: str = "warn",
    curve_effects: bool | None = None,
    progress: bool = False,
    on_progress: Any = None,
) -> ScalingFit:
    """Fit a curve-law model (a spec whose ``law`` is ``"dynamics"``) to ``curves`` with NUTS.

    ``curve_effects`` (default: when some curve has at least 3 checkpoints) gives each curve an
    offset on log loss, so the predictive band of a new curve includes a whole-curve shift, not
    only point noise. Chains start near a multi-start least-squares fit (:func:`start_points`;
    numpyro backend) and sample with a dense mass matrix. Returns a
    :class:`~bayes_scaling.fit.ScalingFit` (its ``runs`` is the :class:`CurveTable`); the
    convergence gate runs as in :func:`bayes_scaling.fit.fit`.
    """
    import datetime as dt

    import arviz as az

    from bayes_scaling import inference
    from bayes_scaling.diagnostics import check_convergence, diagnose
    from bayes_scaling.errors import SpecError
    from bayes_scaling.fit import ScalingFit, _seed, versions
    from bayes_scaling.model import build_dynamics_model
    from bayes_scaling.spec import load_spec

    spec = load_spec(model)
    if spec.law not in DYNAMICS_LAWS:
        raise SpecError(f"model {spec.name!r} has law {spec.law!r}, not a curve law "
                        f"({', '.join(DYNAMICS_LAWS)}); fit it with bayes_scaling.fit.fit")
    tell = on_progress or (lambda _msg: None)
    seed, backend = _seed(random_seed), backend or inference.DEFAULT_BACKEND
    if curve_effects is None:
        curve_effects = bool(curves.curves()["n_points"].max() >= 3)
    tell(f"building {spec.name} on {curves.n_points} points of {curves.n_curves} curves, "
         f"{curves.n_groups} group(s)")
    pm_model = build_dynamics_model(spec, curves, curve_effects=curve_effects)
    tell("start points: multi-start least-squares fit")
    pm_model.bayes_scaling_initvals = start_points(spec, curves, pm_model, chains,
                                                   np.random.default_rng([seed, 1]))
    names = posterior_var_names(spec, curves, curve_effects)
    tell(f"sampling: {chains} chains x ({tune} tune + {draws} draws), backend {backend}")
    idata, seconds = inference.sample(pm_model, var_names=names, backend=backend, chains=chains,
                                      draws=draws, tune=tune, target_accept=target_accept,
                                      random_seed=seed, progress=progress)
    diag = diagnose(idata, [v for v in names if v in idata.posterior], backend=backend,
                    seed=seed, sampling_seconds=seconds)
    tell(f"sampled in {seconds:.1f} s; " + ("gate passed" if diag.passed else diag.banner()))
    meta = {"method": "nuts", "seed": seed, "backend": backend, "target_accept": target_accept,
            "centre": input_centre(curves), "curve_effects": curve_effects,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": versions()}
    keep = {g: idata[g] for g in ("posterior", "sample_stats") if g in idata.groups()}
    result = ScalingFit(az.InferenceData(**keep), spec, curves, diag, meta)
    check_convergence(diag, on_bad=on_bad)
    return result


# --------------------------------------------------------------------------------------------
# Queries (numpy only: a saved fit is loaded and queried without PyMC)
# --------------------------------------------------------------------------------------------
#: Decades of model size past the largest curve beyond which a query warns.
FAR_DECADES_N = 1.5
#: Default tolerance of :func:`optimal_batch_size`: within 10% of the fewest steps or tokens.
BATCH_TOLERANCE = 0.1


def _positive(values: Any, name: str) -> np.ndarray:
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    except (TypeError, ValueError):
        raise QueryError(f"{name} must be numbers, got {values!r}") from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise QueryError(f"{name} must be positive and finite, got {values!r}")
    return a


def _scalar(value: Any, name: str) -> float:
    a = _positive(value, name)
    if a.size != 1:
        raise QueryError(f"{name} must be one number here, got {a.size}")
    return float(a[0])


def _natural_draws(fit: ScalingFit, group: str, rng: np.random.Generator) -> dict[str, Any]:
    """Natural constants per draw, shape ``(S, 1)`` (``n_c``, ``alpha_n``, ..., ``b_star``)."""
    theta = group_theta(fit, group, rng=rng)
    return {(k[4:] if k.startswith("log_") else k): (np.exp(v) if k.startswith("log_") else v)
            [:, None] for k, v in theta.items()}


def _wrap_draws(fit: ScalingFit, samples: np.ndarray, name: str, **attrs: Any) -> xr.DataArray:
    c, d = fit.posterior.sizes[CHAIN], fit.posterior.sizes[DRAW]
    return xr.DataArray(samples.reshape(c, d, -1), dims=(CHAIN, DRAW, POINT), name=name,
                        attrs=attrs)


def _messages(fit: ScalingFit, extra: Sequence[str] = ()) -> tuple[str, ...]:
    for m in extra:
        warnings.warn(m, ExtrapolationWarning, stacklevel=3)
    return (*([fit.warning_banner] if fit.warning_banner else []), *extra)


def curve_noise(fit: ScalingFit, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Where one new run lands around the law, on log loss: a whole-curve offset of sd
    ``sigma_curve`` (one per draw, shared by its checkpoints) plus checkpoint noise."""
    out = observation_noise(fit, shape, rng)
    if "sigma_curve" in fit.posterior:
        out = out + flat(fit.posterior["sigma_curve"])[:, None] * rng.standard_normal(
            (shape[0], 1))
    return out


def predict_curve(
    fit: ScalingFit,
    n_params: float,
    batch_size: float,
    steps: Any = None,
    *,
    group: str | None = None,
    band: str = "predictive",
    probs: Sequence[float] = DEFAULT_PROBS,
    interval: float = DEFAULT_INTERVAL,
    random_seed: SeedLike = None,
) -> QueryResult:
    """Loss curve (nats/token vs steps) of a model of ``n_params`` trained at ``batch_size``.

    Parameters
    ----------
    fit : ScalingFit
        A curve-law fit (:func:`fit_dynamics`).
    n_params, batch_size : float
        Model size (counted as in the fit) and batch size in tokens.
    steps : array_like, optional
        Optimizer steps; default 50 log-spaced steps over the fitted curves' range.
    group : str, optional
        A seen group, or ``"new"`` for an unseen data distribution.
    band : {"predictive", "law"}
        ``"law"``: the law's mean; ``"predictive"``: where one new run would land (law, a
        whole-curve offset and checkpoint noise).

    Returns
    -------
    QueryResult
        Summary rows per step: ``n_params, batch_size_tokens, steps, tokens, group, band``,
        the interval columns and ``decades_past_n`` (past the largest fitted size).
    """
    probs, interval = check_probs(probs, interval)
    if band not in BANDS:
        raise QueryError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    n, b = _scalar(n_params, "n_params"), _scalar(batch_size, "batch_size")
    s = (np.geomspace(fit.runs.s.min(), fit.runs.s.max(), 50) if steps is None
         else _positive(steps, "steps"))
    rng = np.random.default_rng(random_seed)
    g = resolve_group(fit, group)
    theta = {k: v[:, None] for k, v in group_theta(fit, g, rng=rng).items()}
    log_l = np.broadcast_to(log_loss_nsb(np.log(n), np.log(s)[None, :], np.log(b), **theta),
                            (next(iter(theta.values())).shape[0], s.size))
    if band == "predictive":
        log_l = log_l + curve_noise(fit, log_l.shape, rng)
    loss = np.exp(log_l)
    past = max(0.0, float(np.log10(n / fit.runs.n.max())))
    summary = pd.concat([
        pd.DataFrame({"n_params": n, "batch_size_tokens": b, "steps": s, "tokens": s * b,
                      "group": g, "band": band}),
        interval_table(loss, probs=probs, interval=interval),
        pd.DataFrame({"decades_past_n": np.full(s.size, past)})], axis=1)
    warn = ([f"predicting {past:.1f} decades of model size past the largest fitted curve"]
            if past > FAR_DECADES_N else [])
    return QueryResult(_wrap_draws(fit, loss, "loss", band=band, units="nats/token", group=g),
                       summary, band, _messages(fit, warn))


def _target(target_loss: Any) -> float:
    try:
        t = float(target_loss)
    except (TypeError, ValueError):
        raise QueryError(f"target loss must be a number, got {target_loss!r}") from None
    if not np.isfinite(t) or t <= 0:
        raise QueryError(f"target loss must be positive and finite, got {target_loss}")
    return t


def _budget_table(fit: ScalingFit, draws: np.ndarray, head: pd.DataFrame, probs: Sequence[float],
                  interval: float, name: str, units: str) -> QueryResult:
    reach = np.isfinite(draws)
    table = pd.concat([head.assign(band="law", p_unreachable=1.0 - reach.mean(axis=0)),
                       interval_table(draws, probs=probs, interval=interval)], axis=1)
    msgs = list(_messages(fit))
    for j in np.flatnonzero(table["p_unreachable"].to_numpy() > 0.5):
        msgs.append(f"target {head['target_loss'].iloc[j]:g} is below the loss floor "
                    f"(N_c/N)^alpha_N at N={head['n_params'].iloc[j]:.3g} in "
                    f"{table['p_unreachable'].iloc[j]:.0%} of draws: most likely unreachable")
    return QueryResult(_wrap_draws(fit, draws, name, band="law", units=units), table, "law",
                       tuple(msgs))


def _steps_draws(fit: ScalingFit, n: float, target: float, batch: np.ndarray, group: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    nat = _natural_draws(fit, group, rng)
    return steps_to_loss(n, target, batch[None, :], **nat), nat


def steps_needed(fit: ScalingFit, n_params: float, target_loss: float, batch_size: Any = None,
                 *, group: str | None = None, probs: Sequence[float] = DEFAULT_PROBS,
                 interval: float = DEFAULT_INTERVAL, random_seed: SeedLike = None
                 ) -> QueryResult:
    r"""Optimizer steps to reach ``target_loss`` at each batch size, and the minimum over them.

    Per draw, closed form: :math:`S = S_{min}(L^*)(1 + B_{crit}(L^*)/B)`; the row with
    ``batch_size_tokens = inf`` (``quantity = "s_min"``) is the fewest steps of any batch size,
    approached as :math:`B \gg B_{crit}`. ``inf`` draws (target below the size's floor) count in
    ``p_unreachable``. Band ``"law"``. ``batch_size`` defaults to the fitted curves' sizes.
    """
    probs, interval = check_probs(probs, interval)
    n, target = _scalar(n_params, "n_params"), _target(target_loss)
    b = (np.unique(fit.runs.b) if batch_size is None else _positive(batch_size, "batch_size"))
    g = resolve_group(fit, group)
    b_all = np.append(b, np.inf)
    draws, _ = _steps_draws(fit, n, target, b_all, g, np.random.default_rng(random_seed))
    head = pd.DataFrame({"n_params": n, "target_loss": target, "batch_size_tokens": b_all,
                         "quantity": ["steps"] * b.size + ["s_min"], "group": g})
    return _budget_table(fit, draws, head, probs, interval, "steps", "optimizer steps")


def tokens_needed_at_batch(fit: ScalingFit, n_params: float, target_loss: float,
                           batch_size: Any = None, *, group: str | None = None,
                           probs: Sequence[float] = DEFAULT_PROBS,
                           interval: float = DEFAULT_INTERVAL,
                           random_seed: SeedLike = None) -> QueryResult:
    r"""Training tokens ``E = S B`` to reach ``target_loss`` at each batch size, and the minimum.

    :math:`E = S_{min}(L^*)(B + B_{crit}(L^*))`; the row with ``batch_size_tokens = 0``
    (``quantity = "e_min"``) is the fewest tokens of any batch size, approached as
    :math:`B \ll B_{crit}` (Kaplan et al. 2020, eq. 5.5). Band ``"law"``.
    """
    probs, interval = check_probs(probs, interval)
    n, target = _scalar(n_params, "n_params"), _target(target_loss)
    b = (np.unique(fit.runs.b) if batch_size is None else _positive(batch_size, "batch_size"))
    g = resolve_group(fit, group)
    steps, nat = _steps_draws(fit, n, target, b, g, np.random.default_rng(random_seed))
    with np.errstate(invalid="ignore"):
        smin = steps_to_loss(n, target, np.inf, **nat)
        draws = np.concatenate([steps * b[None, :], smin * b_crit(target, b_star=nat["b_star"],
                                                                  alpha_b=nat["alpha_b"])], 1)
    head = pd.DataFrame({"n_params": n, "target_loss": target,
                         "batch_size_tokens": np.append(b, 0.0),
                         "quantity": ["tokens"] * b.size + ["e_min"], "group": g})
    return _budget_table(fit, draws, head, probs, interval, "tokens", "tokens")


def critical_batch_size(fit: ScalingFit, loss: Any, *, group: str | None = None,
                        probs: Sequence[float] = DEFAULT_PROBS, interval: float = DEFAULT_INTERVAL,
                        random_seed: SeedLike = None) -> QueryResult:
    r"""Critical batch size :math:`B_{crit}(L) = B^*/L^{1/\alpha_B}` (tokens) at each loss.

    The batch size that trades steps against tokens evenly: training at it takes twice the
    fewest steps and twice the fewest tokens (Kaplan et al. 2020; McCandlish et al. 2018).
    Band ``"law"``; summary rows per loss: ``loss, group, band`` and the interval columns.
    """
    probs, interval = check_probs(probs, interval)
    lv = _positive(loss, "loss")
    g = resolve_group(fit, group)
    nat = _natural_draws(fit, g, np.random.default_rng(random_seed))
    draws = b_crit(lv[None, :], b_star=nat["b_star"], alpha_b=nat["alpha_b"])
    summary = pd.concat([pd.DataFrame({"loss": lv, "group": g, "band": "law"}),
                         interval_table(draws, probs=probs, interval=interval)], axis=1)
    return QueryResult(_wrap_draws(fit, draws, "b_crit", band="law", units="tokens"),
                       summary, "law", _messages(fit))


def optimal_batch_size(fit: ScalingFit, n_params: float, target_loss: float, *,
                       tolerance: float = BATCH_TOLERANCE, group: str | None = None,
                       probs: Sequence[float] = DEFAULT_PROBS, interval: float = DEFAULT_INTERVAL,
                       random_seed: SeedLike = None) -> QueryResult:
    r"""Batch sizes that minimise steps or tokens to reach ``target_loss``, with bands.

    Steps fall and tokens rise with the batch size, so neither has an interior minimum: steps
    approach :math:`S_{min}` only as :math:`B \to \infty` and tokens :math:`E_{min}` only as
    :math:`B \to 0`. Rows (``quantity``): ``batch_for_steps`` = :math:`B_{crit}/\epsilon`, the
    smallest batch within ``1 + tolerance`` of the fewest steps; ``batch_for_tokens`` =
    :math:`\epsilon B_{crit}`, the largest batch within ``1 + tolerance`` of the fewest tokens;
    ``b_crit``, the balanced choice (2 S_min steps, 2 E_min tokens); and ``s_min``, ``e_min``.
    Band ``"law"``.
    """
    probs, interval = check_probs(probs, interval)
    n, target = _scalar(n_params, "n_params"), _target(target_loss)
    if not 0.0 < float(tolerance) < 1.0:
        raise QueryError(f"tolerance must be between 0 and 1, got {tolerance}")
    g = resolve_group(fit, group)
    nat = _natural_draws(fit, g, np.random.default_rng(random_seed))
    bc = b_crit(target, b_star=nat["b_star"], alpha_b=nat["alpha_b"])[:, 0]
    smin = steps_to_loss(n, target, np.inf, **nat)[:, 0]
    with np.errstate(invalid="ignore"):
        cols = {"batch_for_steps": bc / tolerance, "batch_for_tokens": tolerance * bc,
                "b_crit": bc, "s_min": smin, "e_min": smin * bc}
    draws = np.stack(list(cols.values()), axis=1)
    head = pd.DataFrame({"n_params": n, "target_loss": target, "quantity": list(cols),
                         "tolerance": float(tolerance), "group": g})
    return _budget_table(fit, draws, head, probs, interval, "batch", "tokens or steps")
