r"""The training-dynamics law ``L(N, S, B)``: critical batch size, the solve for ``L``, the
curve-law object and synthetic curves drawn from it (numpy; the same body runs on PyTensor
through ``xp``).

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
The graph starts each checkpoint's solve from its observed loss (numpy from that or the
default guess, whichever is closer) and iterates until every checkpoint has converged (at
most :data:`GRAPH_ITERATIONS`; 2-3 steps where the posterior has mass), so the likelihood is
the exact residual ``log L_obs - log L(N, S, B)``, not an errors-in-variables approximation
(as fitting ``L(N, S_min)`` at ``S_min`` computed from the *observed* loss would be).

Its PyMC graph is :mod:`bayes_scaling.model.build_curves`, its fit
:mod:`bayes_scaling.fitting.dynamics`, its queries :mod:`bayes_scaling.query.curves`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from bayes_scaling.laws.final_loss import Law

#: Most Newton iterations of the numpy solve (it stops earlier once every point has converged).
MAX_ITERATIONS = 60
#: Most iterations inside the PyMC graph, started from each checkpoint's observed loss; the
#: graph's solve stops once every point has converged (``model.build_curves.NewtonSolve``):
#: near the posterior (within 3%) that is 2-3 steps (to 1e-10), from anywhere in the prior
#: range it still converges (tests/test_dynamics.py, tests/test_curve_graph.py). An
#: unconverged solve would break the match between NUTS's energy and its gradient.
GRAPH_ITERATIONS = 30
#: The numpy solve stops once every ``|h(v)|`` is below this (``v`` is a log: relative error).
TOLERANCE = 1e-13
#: Within this ``|h|`` of the root Newton steps are always taken (quadratic convergence).
NEAR_ROOT = 1e-6


def converged_tolerance(dtype: Any) -> float:
    """``|h|`` below which a point has converged: :data:`TOLERANCE` in float64, 64 units of
    rounding (about 8e-6) in float32, where ``h`` cannot get below a few of them."""
    return TOLERANCE if np.dtype(dtype).itemsize >= 8 else float(64 * np.finfo(dtype).eps)


def _np_done(h: np.ndarray) -> bool:
    return bool(np.all(np.abs(h) < converged_tolerance(np.asarray(h).dtype)))


#: Array operations of the solver on numpy (``model.py`` passes PyTensor's).
NUMPY_SOLVER_OPS = SimpleNamespace(exp=np.exp, log=np.log, log1p=np.log1p,
                                   logaddexp=np.logaddexp, where=np.where,
                                   stop_gradient=lambda x: x, done=_np_done)


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
        Array operations (``exp, log, log1p, logaddexp, where, stop_gradient, done``, and
        optionally ``iterate``: a driver of the iterations that replaces the Python loop of
        :func:`newton_iterations`, e.g. one graph Op that stops where every point has
        converged).
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
    floor = xp.exp(log_floor)

    def clip(x):
        return xp.where(x > lo, xp.where(x < hi, x, hi), lo)

    lo = a + 0.0 * log_floor + 0.0 * c
    hi = a + alpha_s * _softplus(c - log_floor / alpha_b, xp)
    iterate = getattr(xp, "iterate", None)
    if log_start is not None:  # start from log(L_start - L_N) where that is the better guess
        excess = xp.exp(log_start) - floor
        v_start = clip(xp.where(excess > 0, xp.log(xp.where(excess > 0, excess, 1.0)), lo))
    if log_start is not None and iterate is not None:
        v = v_start  # a driver that iterates to convergence needs no choice of start
    else:
        v = clip((a + alpha_s * c) / (1.0 + alpha_s / alpha_b))  # B << B_crit, L ~ step term
    if log_start is not None and iterate is None:
        h_guess, _ = step_residual(v, floor, a, c, alpha_s, alpha_b, xp)
        h_start, _ = step_residual(v_start, floor, a, c, alpha_s, alpha_b, xp)
        lo = xp.where(h_guess <= 0, xp.where(v > lo, v, lo), lo)
        hi = xp.where(h_guess >= 0, xp.where(v < hi, v, hi), hi)
        lo = xp.where(h_start <= 0, xp.where(v_start > lo, v_start, lo), lo)
        hi = xp.where(h_start >= 0, xp.where(v_start < hi, v_start, hi), hi)
        v = xp.where(h_start * h_start < h_guess * h_guess, v_start, v)
    if iterate is not None:
        v = iterate(v, lo, hi, floor, a, c, alpha_s, alpha_b, iterations=iterations)
    else:
        v = newton_iterations(v, lo, hi, floor, a, c, alpha_s, alpha_b, xp=xp,
                              iterations=iterations)
    v = xp.stop_gradient(v)
    h, slope = step_residual(v, floor, a, c, alpha_s, alpha_b, xp)
    return v - h / slope


def step_residual(v, floor, a, c, alpha_s, alpha_b, xp=NUMPY_SOLVER_OPS):
    r"""``h(v)`` of :func:`solve_step_term` and its slope ``h'(v)``, with ``floor = L_N``.

    Four transcendental functions per point: ``e^v``, ``log L``, ``k = B_crit(L)/B = e^{c -
    log L / alpha_B}`` and ``log1p(k)`` (``h = v - a - alpha_S log(1 + k)``; the slope is
    ``1 + (alpha_S/alpha_B) (k/(1+k)) (e^v/L)``). Past ``log k = 60`` (``k/(1+k)`` is 1 to
    rounding) ``log(1 + k)`` is ``log k``, so nothing overflows in float32.
    """
    ev = xp.exp(v)
    total = floor + ev
    logk = c - xp.log(total) / alpha_b
    small = logk < 60.0
    k = xp.exp(xp.where(small, logk, 60.0))
    h = v - a - alpha_s * xp.where(small, xp.log1p(k), logk)
    return h, 1.0 + (alpha_s / alpha_b) * (k / (1.0 + k)) * (ev / total)


def newton_update(v, lo, hi, h, slope, h_before, xp=NUMPY_SOLVER_OPS):
    """One safeguarded Newton step of :func:`solve_step_term` from ``v`` (where ``h`` and
    ``slope`` were evaluated; ``h_before`` is the last step's ``h``): ``(v, lo, hi)`` after it.

    Newton, unless, still far from the root, it leaves the bracket or the last step did not
    halve ``|h|`` (a sharp bend of B_crit(L), small alpha_B, makes Newton overshoot by up to
    alpha_S/alpha_B): then bisect. Near the root Newton is always taken: there a step of a
    rounding error can fall just outside a bracket that has shrunk to the root from one side
    only, and the bisection of that bracket would jump away from the root (seen under XLA's
    fused arithmetic: 1.9e-3 in log loss after 6 iterations).
    """
    lo = xp.where(h <= 0, v, lo)
    hi = xp.where(h >= 0, v, hi)
    newton = v - h / slope
    h2 = h * h
    near = h2 < NEAR_ROOT**2
    fast = (newton >= lo) * (newton <= hi) * (h2 <= 0.25 * h_before * h_before)
    return xp.where(near + fast > 0, newton, 0.5 * (lo + hi)), lo, hi


def newton_iterations(v, lo, hi, floor, a, c, alpha_s, alpha_b, *, xp=NUMPY_SOLVER_OPS,
                      iterations: int = MAX_ITERATIONS):
    """The iterations of :func:`solve_step_term` from ``v`` in ``[lo, hi]``: at most
    ``iterations`` steps of :func:`newton_update`, stopping once ``xp.done(h)``."""
    h_before = 1e30 + 0.0 * lo
    for _ in range(iterations):
        h, slope = step_residual(v, floor, a, c, alpha_s, alpha_b, xp)
        if xp.done(h):
            break
        v, lo, hi = newton_update(v, lo, hi, h, slope, h_before, xp)
        h_before = h
    return v


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
    if "log_b_star" in theta_c:
        out["log_b_star"] = (theta_c["log_b_star"] + centre["b"]
                             + centre["loss"] / theta_c["alpha_b"])
    if "log_b_d" in theta_c:  # B_crit(D): log(B_crit/B) at the centre D = e^(m_S + m_B), B
        out["log_b_d"] = (theta_c["log_b_d"] + centre["b"]
                          - theta_c["beta_b"] * (centre["s"] + centre["b"] - LOG_D_REF))
    return out


def centre_constants(theta: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
    """Inverse of :func:`uncentre`."""
    out = dict(theta)
    out["log_n_c"] = theta["alpha_n"] * (theta["log_n_c"] - centre["n"])
    out["log_s_c"] = theta["alpha_s"] * (theta["log_s_c"] - centre["s"])
    if "log_b_star" in theta:
        out["log_b_star"] = theta["log_b_star"] - centre["b"] - centre["loss"] / theta["alpha_b"]
    if "log_b_d" in theta:
        out["log_b_d"] = (theta["log_b_d"] - centre["b"]
                          + theta["beta_b"] * (centre["s"] + centre["b"] - LOG_D_REF))
    return out


#: Natural-scale size of a centred offset: ``d(natural)/d(centred)`` is ``1/exponent`` (or 1).
OFFSET_SCALE: dict[str, str | None] = {"log_n_c": "alpha_n", "log_s_c": "alpha_s",
                                       "log_b_star": None, "log_b_d": None}


def _log_loss_law(log_n, log_s, log_b, *, xp=NUMPY_SOLVER_OPS, **theta):
    return log_loss_nsb(log_n, log_s, log_b, xp=xp, **theta)


#: The curve law, as a :class:`~bayes_scaling.laws.final_loss.Law` (inputs ``n, s, b``); not in
#: ``LAWS``, whose laws are ``L(N, D)`` laws.
DYNAMICS = Law(
    "dynamics", ("n", "s", "b"),
    ("log_n_c", "alpha_n", "log_s_c", "alpha_s", "log_b_star", "alpha_b"), log_mean=_log_loss_law,
    citation="Kaplan et al. (2020), arXiv:2001.08361, section 5; Su et al. (2024), "
             "arXiv:2403.06563",
    formula="L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S, S_min = S/(1 + B_crit(L)/B), "
            "B_crit(L) = B*/L^(1/alpha_B)",
)


# --------------------------------------------------------------------------------------------
# The rival hypothesis: a critical batch size that grows with the data seen, B_crit(D)
# --------------------------------------------------------------------------------------------
#: Reference data size of :func:`b_crit_data` (``log``; 1e9 tokens): ``B_D`` is B_crit there.
LOG_D_REF = float(np.log(1e9))


def b_crit_data(tokens, *, b_d, beta_b):
    r"""Critical batch size in tokens after ``tokens`` tokens (Zhang et al. 2024, Bergsma et al.).

    .. math:: B_{crit}(D) = B_D\,(D / 10^9)^{\beta_B}
    """
    return b_d * (np.asarray(tokens, dtype=float) / 1e9) ** beta_b


def log_loss_nsb_data(log_n, log_s, log_b, *, log_n_c, alpha_n, log_s_c, alpha_s, log_b_d,
                      beta_b, xp=NUMPY_SOLVER_OPS, iterations: int = MAX_ITERATIONS,
                      log_start=None):
    r"""``log L(N, S, B)`` with the critical batch size a function of the tokens seen.

    .. math::
        L = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S}, \qquad
        S_{min} = S / (1 + B_{crit}(D)/B), \qquad D = S B,

    with :func:`b_crit_data`. Zhang et al. (2024, arXiv:2410.21676) find the critical batch
    size grows with the data size and barely with the model size at fixed data; Bergsma et al.
    (2025, arXiv:2505.13738) find the optimal batch size a power of the data size. ``L`` appears
    on one side only: a closed form, no solve (``iterations`` and ``log_start`` are accepted for
    the common signature and ignored).
    """
    del iterations, log_start
    log_k = log_b_d + beta_b * (log_s + log_b - LOG_D_REF) - log_b     # log(B_crit/B)
    log_smin = log_s - _softplus(log_k, xp)
    log_floor = alpha_n * (log_n_c - log_n) + 0.0 * log_smin
    return xp.logaddexp(log_floor, alpha_s * (log_s_c - log_smin))


def steps_to_loss_data(n, target, batch, *, n_c, alpha_n, s_c, alpha_s, b_d, beta_b):
    r"""Steps of batch ``batch`` a model of ``n`` parameters needs to reach ``target`` (B_crit(D)).

    :math:`S = S_{min}(1 + B_{crit}(S B)/B)` with :math:`S_{min}` as in :func:`steps_to_loss`;
    the right side grows as :math:`S^{\beta_B}` (``beta_B < 1``), so Newton in ``log S`` from
    ``S_min`` converges; ``inf`` where the target is at or below the size's floor.
    """
    gap = np.asarray(target - (n_c / n) ** alpha_n, dtype=float)
    batch = np.asarray(batch, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        smin = np.where(gap > 0, s_c * np.where(gap > 0, gap, 1.0) ** (-1.0 / alpha_s), np.inf)
        x = np.log(np.where(np.isfinite(smin), smin, 1.0))      # log S
        log_smin = x.copy()
        for _ in range(MAX_ITERATIONS):
            k = b_d * (np.exp(x) * batch / 1e9) ** beta_b / batch   # B_crit(S B)/B
            h = x - log_smin - np.log1p(k)
            x = x - h / (1.0 - beta_b * k / (1.0 + k))
            if np.all(np.abs(h) < 1e-12):
                break
        return np.where(np.isfinite(smin), np.exp(x), np.inf)


#: The rival curve law: Kaplan/Su's with ``B_crit(D)`` in place of ``B_crit(L)``.
DYNAMICS_BCRIT_D = Law(
    "dynamics_bcrit_d", ("n", "s", "b"),
    ("log_n_c", "alpha_n", "log_s_c", "alpha_s", "log_b_d", "beta_b"),
    log_mean=log_loss_nsb_data,
    citation="Kaplan et al. (2020), arXiv:2001.08361, section 5; Zhang et al. (2024), "
             "arXiv:2410.21676; Bergsma et al. (2025), arXiv:2505.13738",
    formula="L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S, S_min = S/(1 + B_crit(D)/B), "
            "B_crit(D) = B_D (D/1e9)^beta_B, D = S B",
)
#: Registry of curve laws (the name a model spec's ``law`` gives).
DYNAMICS_LAWS: dict[str, Law] = {"dynamics": DYNAMICS, "dynamics_bcrit_d": DYNAMICS_BCRIT_D}


