r"""Scaling laws, each written once in plain arithmetic (numpy only).

Every law is evaluated in log space from log inputs and log-scale constants, using ``exp``,
``log`` and ``logaddexp`` taken from an ``xp`` namespace, so that the same body runs on numpy
arrays, xarray objects (broadcasting by dimension name) and PyTensor graphs (``model.py``
passes ``xp=PYTENSOR_OPS``). Natural-scale helpers (:func:`chinchilla`, :func:`kaplan`, ...)
exist for readers and property tests.

Notation: ``n`` parameters, ``d`` training tokens, ``c = 6 n d`` training FLOPs, loss in
nats/token.

Sources
-------
Hoffmann et al. (2022), arXiv:2203.15556 (approach 3); Kaplan et al. (2020),
arXiv:2001.08361 (eqs. 1.1-1.5, Table 2); Li et al. (2025), arXiv:2506.10972 (Farseer);
Caballero et al. (2022), arXiv:2210.14891 (broken power laws).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

NUMPY_OPS = SimpleNamespace(exp=np.exp, log=np.log, logaddexp=np.logaddexp)


# --------------------------------------------------------------------------------------------
# Chinchilla: L(N, D) = E + A / N^alpha + B / D^beta
# --------------------------------------------------------------------------------------------
def chinchilla(n, d, *, e, a, b, alpha, beta):
    r"""Hoffmann et al. (2022), approach 3: :math:`L = E + A N^{-\alpha} + B D^{-\beta}`."""
    return e + a / n**alpha + b / d**beta


def log_chinchilla(log_n, log_d, *, log_e, log_a, log_b, alpha, beta, xp=NUMPY_OPS):
    """``log(chinchilla)`` as a log-sum-exp of its three terms: no overflow, smooth gradients."""
    return xp.logaddexp(xp.logaddexp(log_a - alpha * log_n, log_b - beta * log_d), log_e)


def chinchilla_terms(log_n, log_d, *, e, a, b, alpha, beta, xp=NUMPY_OPS):
    """:func:`chinchilla` from log inputs and natural coefficients, as one sum of terms.

    The sum form of :func:`log_chinchilla` (exponentiate, add, take one log): two ``exp`` per
    run instead of a nested log-sum-exp, for the float32 path of large tables
    (``model.build``), where the terms cannot overflow.
    """
    return e + a * xp.exp(-alpha * log_n) + b * xp.exp(-beta * log_d)


def chinchilla_floor(log_n, *, log_e, log_a, alpha, xp=NUMPY_OPS, **_):
    """Log of the loss an ``n``-parameter model reaches with infinite data, ``E + A/N^alpha``."""
    return xp.logaddexp(log_e, log_a - alpha * log_n)


def chinchilla_tokens_needed(n, target, *, e, a, b, alpha, beta):
    r"""Tokens a model of ``n`` parameters needs to reach loss ``target`` (Hoffmann et al. 2022).

    .. math:: D^*(N) = \left(\frac{B}{L^* - E - A N^{-\alpha}}\right)^{1/\beta}

    Returns ``inf`` where the target is at or below the size's floor ``E + A/N^alpha``.
    """
    gap = np.asarray(target - e - a / n**alpha, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (b / gap) ** (1.0 / beta)
    return np.where(gap > 0, out, np.inf)


def chinchilla_optimal(c, *, e, a, b, alpha, beta):
    r"""Compute-optimal split of ``c`` FLOPs, ``c = 6 N D`` (Hoffmann et al. 2022, eq. 4).

    .. math:: G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha+\beta)},\quad
              N_{opt} = G (C/6)^{\beta/(\alpha+\beta)},\quad
              D_{opt} = G^{-1} (C/6)^{\alpha/(\alpha+\beta)}

    Returns ``(n_opt, d_opt)``.
    """
    g = (alpha * a / (beta * b)) ** (1.0 / (alpha + beta))
    return g * (c / 6.0) ** (beta / (alpha + beta)), (c / 6.0) ** (alpha / (alpha + beta)) / g


# --------------------------------------------------------------------------------------------
# Chinchilla with a smoothly broken N term (Caballero et al. 2022, one break)
# --------------------------------------------------------------------------------------------
#: Smoothness ``f`` of the break, in natural-log units of N (fixed, not fitted): the local
#: slope of the N term moves from ``alpha`` to ``alpha_2`` over about ``+-2 f`` nats of log N
#: (``+-0.43`` decades). A fitted ``f`` is weakly identified on ladders of 2-3 decades.
BREAK_SMOOTHNESS = 0.5


def chinchilla_broken(n, d, *, e, a, b, alpha, beta, n_b, alpha_2):
    r"""Chinchilla's law with a smoothly broken N term (Caballero et al. 2022, eq. 1, one break).

    .. math:: L = E + A N^{-\alpha}\left(1 + (N/N_b)^{1/f}\right)^{-(\alpha_2 - \alpha) f}
              + B D^{-\beta}

    Below the break ``N_b`` the N term falls as ``N^-alpha``, above it as ``N^-alpha_2``
    (``alpha_2 < alpha``: a bend toward a plateau; ``alpha_2 > alpha``: small runs above the
    law, a cold start); ``f`` is :data:`BREAK_SMOOTHNESS`.
    """
    f = BREAK_SMOOTHNESS
    return e + a / n**alpha * (1 + (n / n_b) ** (1 / f)) ** (-(alpha_2 - alpha) * f) \
        + b / d**beta


def _log_broken_n_term(log_n, log_a, alpha, log_n_b, alpha_2, xp):
    f = BREAK_SMOOTHNESS
    soft = xp.logaddexp(0.0 * log_n, (log_n - log_n_b) / f)  # log(1 + (N/N_b)^(1/f))
    return log_a - alpha * log_n - (alpha_2 - alpha) * f * soft


def log_chinchilla_broken(log_n, log_d, *, log_e, log_a, log_b, alpha, beta, log_n_b, alpha_2,
                          xp=NUMPY_OPS):
    """``log(chinchilla_broken)`` as a log-sum-exp of its three terms."""
    n_term = _log_broken_n_term(log_n, log_a, alpha, log_n_b, alpha_2, xp)
    return xp.logaddexp(xp.logaddexp(n_term, log_b - beta * log_d), log_e)


def chinchilla_broken_floor(log_n, *, log_e, log_a, alpha, log_n_b, alpha_2, xp=NUMPY_OPS, **_):
    """Log of the infinite-data loss of the broken law at size ``n``: ``E`` plus the N term."""
    return xp.logaddexp(log_e, _log_broken_n_term(log_n, log_a, alpha, log_n_b, alpha_2, xp))


def chinchilla_broken_tokens_needed(n, target, *, e, a, b, alpha, beta, n_b, alpha_2):
    r"""Tokens a model of ``n`` parameters needs to reach ``target`` under the broken law.

    .. math:: D^*(N) = \left(\frac{B}{L^* - E - T_N(N)}\right)^{1/\beta}

    with :math:`T_N` the broken N term; ``inf`` where the target is at or below the floor.
    """
    t_n = chinchilla_broken(n, np.inf, e=0.0, a=a, b=0.0, alpha=alpha, beta=beta, n_b=n_b,
                            alpha_2=alpha_2)
    gap = np.asarray(target - e - t_n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (b / gap) ** (1.0 / beta)
    return np.where(gap > 0, out, np.inf)


# --------------------------------------------------------------------------------------------
# Farseer-style: Chinchilla plus an N x D cross term (Li et al. 2025, parsimonious form)
# --------------------------------------------------------------------------------------------
def farseer(n, d, *, e, a, b, alpha, beta, gamma):
    r"""A parsimonious Farseer-style law (Li et al. 2025, arXiv:2506.10972, eq. 3 simplified).

    .. math:: L = E + A N^{-\alpha} + B N^{-\gamma} D^{-\beta}

    Farseer writes :math:`L = E + U(N) + V(D; N)`, with the coefficient and the exponent of the
    data term both functions of ``N`` (six constants in two nested power laws). Here only the
    coefficient moves, as a power of ``N``: one extra constant ``gamma`` (of either sign) over
    Chinchilla, which a ladder of 5-10 sizes can pin. ``gamma = 0`` is Chinchilla's law;
    ``gamma > 0``: larger models need fewer tokens for the same data-limited loss (an N x D
    interaction, :math:`\partial^2 L / \partial \log N \partial \log D \ne 0`).
    """
    return e + a / n**alpha + b / (n**gamma * d**beta)


def log_farseer(log_n, log_d, *, log_e, log_a, log_b, alpha, beta, gamma, xp=NUMPY_OPS):
    """``log(farseer)`` as a log-sum-exp of its three terms."""
    cross = log_b - beta * log_d - gamma * log_n
    return xp.logaddexp(xp.logaddexp(log_a - alpha * log_n, cross), log_e)


def farseer_terms(log_n, log_d, *, e, a, b, alpha, beta, gamma, xp=NUMPY_OPS):
    """:func:`farseer` as one sum of terms (see :func:`chinchilla_terms`)."""
    return e + a * xp.exp(-alpha * log_n) + b * xp.exp(-beta * log_d - gamma * log_n)


def farseer_tokens_needed(n, target, *, e, a, b, alpha, beta, gamma):
    r"""Tokens a model of ``n`` parameters needs to reach ``target`` under :func:`farseer`.

    .. math:: D^*(N) = \left(\frac{B N^{-\gamma}}{L^* - E - A N^{-\alpha}}\right)^{1/\beta}

    ``inf`` where the target is at or below the size's floor ``E + A/N^alpha``.
    """
    gap = np.asarray(target - e - a / n**alpha, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (b / n**gamma / gap) ** (1.0 / beta)
    return np.where(gap > 0, out, np.inf)


def farseer_optimal(c, *, e, a, b, alpha, beta, gamma):
    r"""Compute-optimal split of ``c = 6 N D`` FLOPs under :func:`farseer`.

    Minimising :math:`A N^{-\alpha} + B (6/C)^{\beta} N^{\beta - \gamma}` over ``N``:

    .. math:: N_{opt} = \left(\frac{\alpha A}{(\beta - \gamma) B}\right)^{1/(\alpha+\beta-\gamma)}
              (C/6)^{\beta/(\alpha+\beta-\gamma)}, \quad D_{opt} = C / (6 N_{opt})

    NaN where ``gamma >= beta`` (the loss then falls with ``N`` at any fixed budget).
    """
    k = np.asarray(beta - gamma, dtype=float)
    ok = k > 0
    k = np.where(ok, k, np.nan)
    n_opt = (alpha * a / (k * b)) ** (1.0 / (alpha + k)) * (c / 6.0) ** (beta / (alpha + k))
    return n_opt, c / (6.0 * n_opt)


# --------------------------------------------------------------------------------------------
# Kaplan: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, with an optional floor E
# --------------------------------------------------------------------------------------------
def kaplan(n, d, *, n_c, d_c, alpha_n, alpha_d):
    r"""Kaplan et al. (2020), eq. 1.5: :math:`[(N_c/N)^{\alpha_N/\alpha_D} + D_c/D]^{\alpha_D}`."""
    return ((n_c / n) ** (alpha_n / alpha_d) + d_c / d) ** alpha_d


def log_kaplan(log_n, log_d, *, log_n_c, log_d_c, alpha_n, alpha_d, xp=NUMPY_OPS):
    """``log(kaplan)``: ``alpha_D * logaddexp(alpha_N/alpha_D * log(N_c/N), log(D_c/D))``."""
    return alpha_d * xp.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d)


def log_kaplan_e(log_n, log_d, *, log_e, log_n_c, log_d_c, alpha_n, alpha_d, xp=NUMPY_OPS):
    """Log of ``E + kaplan(...)``: Kaplan's joint law with an irreducible loss ``E``."""
    inner = log_kaplan(log_n, log_d, log_n_c=log_n_c, log_d_c=log_d_c, alpha_n=alpha_n,
                       alpha_d=alpha_d, xp=xp)
    return xp.logaddexp(log_e, inner)


def kaplan_floor(log_n, *, log_n_c, alpha_n, xp=NUMPY_OPS, **_):
    """Log of the infinite-data loss of the Kaplan law at size ``n``: ``(N_c/N)^alpha_N``."""
    return alpha_n * (log_n_c - log_n)


def kaplan_e_floor(log_n, *, log_e, log_n_c, alpha_n, xp=NUMPY_OPS, **_):
    """Log of the infinite-data loss of the Kaplan law with a floor: ``E + (N_c/N)^alpha_N``."""
    return xp.logaddexp(log_e, alpha_n * (log_n_c - log_n))


def kaplan_tokens_needed(n, target, *, n_c, d_c, alpha_n, alpha_d, e=0.0):
    r"""Tokens needed to reach ``target`` under Kaplan's joint law (with floor ``e``).

    .. math:: D^* = D_c \left[(L^* - E)^{1/\alpha_D} - (N_c/N)^{\alpha_N/\alpha_D}\right]^{-1}

    ``inf`` where the target is at or below the size's floor ``E + (N_c/N)^alpha_N``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.asarray(target - e, dtype=float)
        gap = np.where(excess > 0, excess, np.nan) ** (1.0 / alpha_d) - (n_c / n) ** (
            alpha_n / alpha_d
        )
        out = d_c / gap
    return np.where(gap > 0, out, np.inf)


def kaplan_optimal(c, *, n_c, d_c, alpha_n, alpha_d, **_):
    r"""Compute-optimal split of ``c`` FLOPs under Kaplan's joint law (a floor ``E`` is inert).

    Minimising :math:`(N_c/N)^k + 6 D_c N / C` over ``N`` with :math:`k = \alpha_N/\alpha_D`:

    .. math:: N_{opt} = \left(\frac{k N_c^k C}{6 D_c}\right)^{1/(k+1)}, \quad
              D_{opt} = C / (6 N_{opt})
    """
    k = alpha_n / alpha_d
    n_opt = (k * n_c**k * c / (6.0 * d_c)) ** (1.0 / (k + 1.0))
    return n_opt, c / (6.0 * n_opt)


def log_kaplan_n(log_n, *, log_n_c, alpha_n, xp=NUMPY_OPS):
    """Kaplan et al. (2020) eq. 1.1, ``L(N) = (N_c/N)^alpha_N``, in log space."""
    return alpha_n * (log_n_c - log_n)


def log_kaplan_d(log_d, *, log_d_c, alpha_d, xp=NUMPY_OPS):
    """Kaplan et al. (2020) eq. 1.2, ``L(D) = (D_c/D)^alpha_D``, in log space."""
    return alpha_d * (log_d_c - log_d)


def kaplan_d_tokens_needed(n, target, *, d_c, alpha_d):
    r"""Tokens needed to reach ``target`` under Kaplan's ``L(D)`` (eq. 1.2): any ``n``.

    .. math:: D^* = D_c \, (L^*)^{-1/\alpha_D}

    The law has no floor (``L -> 0`` as ``D -> inf``), so every positive target is reachable.
    """
    target = np.asarray(target, dtype=float)
    return np.broadcast_to(d_c * target ** (-1.0 / alpha_d), np.broadcast(n, target, d_c).shape)


# --------------------------------------------------------------------------------------------
# The registry: a law is data, not a class
# --------------------------------------------------------------------------------------------
def centring_pairs(entry: Any) -> tuple[tuple[str, str | None], ...]:
    """A ``Law.centring`` value as a tuple of ``(input, exponent_or_None)`` pairs."""
    return (entry,) if isinstance(entry[0], str) else tuple(entry)


@dataclass(frozen=True)
class Law:
    """A scaling law: its inputs, log-scale constants and the functions that evaluate it.

    Attributes
    ----------
    name
        Registry key, used in model specs.
    inputs
        Input names in call order: a subset of ``("n", "d")``.
    params
        Constants in sampling scale: ``log_*`` are natural logs of positive constants, the
        rest (exponents) are positive reals.
    log_mean
        ``log_mean(*log_inputs, **params, xp=...)``: log of the law's mean loss.
    centring
        How a log-scale constant shifts when its input is centred at ``m = mean(log x)``:
        ``{param: (input, exponent_param_or_None)}``. The law evaluated at ``log x - m`` with
        the constant ``p_c`` equals the law at ``log x`` with ``p = p_c + k * m``, where ``k``
        is the exponent parameter (or 1 when ``None``). The sampler works with ``p_c``: it
        removes the ridge between ``log A`` and ``alpha`` (DESIGN.md). A constant that
        multiplies a power of two inputs (Farseer's ``B N^-gamma D^-beta``) lists one pair
        per input: ``((input, exponent), (input, exponent))``; the shifts add.
    scaled
        Centred log-scale constants the sampler multiplies by an exponent:
        ``{param: exponent_param}``. The sampler works with ``s = k * p_c`` (``p_c`` the centred
        constant, ``k`` the exponent), the log of the loss the term contributes at the ladder's
        centre. Kaplan's ``log N_c ~ 30`` sits on a curved ridge with ``alpha_N ~ 0.08``
        (only their product is pinned by the loss level); ``s`` removes it. Empty: no scaling.
    floor
        ``floor(log_n, **params)``: log of the loss at infinite data, or ``None``.
    tokens_needed
        Natural-scale closed form ``f(n, target, **natural)``, or ``None``.
    optimal
        Closed-form compute-optimal split ``f(c, **natural) -> (n_opt, d_opt)``, or ``None``.
    terms
        ``terms(*log_inputs, **natural, xp=...)``: the mean loss (natural scale) as a sum of
        terms, from log inputs and the natural coefficients (``log_a`` -> ``a``); ``None`` when
        the law is not such a sum. Large tables evaluate it in float32 (``model.build``).
    citation
        Where the functional form comes from.
    """

    name: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    log_mean: Callable[..., Any]
    centring: Mapping[str, Any] = field(default_factory=dict)
    scaled: Mapping[str, str] = field(default_factory=dict)
    floor: Callable[..., Any] | None = None
    tokens_needed: Callable[..., Any] | None = None
    optimal: Callable[..., Any] | None = None
    terms: Callable[..., Any] | None = None
    citation: str = ""
    formula: str = ""

    @property
    def group_params(self) -> tuple[str, ...]:
        """The log-scale constants: the ones that may vary by data distribution."""
        return tuple(p for p in self.params if p.startswith("log_"))

    @property
    def exponents(self) -> tuple[str, ...]:
        """The exponents (shared across groups by default)."""
        return tuple(p for p in self.params if not p.startswith("log_"))

    def uncentre(self, theta: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
        """Map constants fitted on centred log inputs back to the law's natural inputs."""
        out = dict(theta)
        for p, entry in self.centring.items():
            for inp, k in centring_pairs(entry):
                out[p] = out[p] + (theta[k] if k else 1.0) * centre[inp]
        return out

    def centre(self, theta: Mapping[str, Any], centre: Mapping[str, float]) -> dict[str, Any]:
        """Inverse of :meth:`uncentre`."""
        out = dict(theta)
        for p, entry in self.centring.items():
            for inp, k in centring_pairs(entry):
                out[p] = out[p] - (theta[k] if k else 1.0) * centre[inp]
        return out

    def unscale(self, theta_s: Mapping[str, Any]) -> dict[str, Any]:
        """Centred constants from the sampler's scaled ones: ``p_c = s / k`` (see ``scaled``)."""
        out = dict(theta_s)
        for p, k in self.scaled.items():
            out[p] = theta_s[p] / theta_s[k]
        return out

    def scale(self, theta_c: Mapping[str, Any]) -> dict[str, Any]:
        """Inverse of :meth:`unscale`: ``s = k * p_c``."""
        out = dict(theta_c)
        for p, k in self.scaled.items():
            out[p] = theta_c[p] * theta_c[k]
        return out

    def evaluate_log(self, log_inputs: Mapping[str, Any], theta: Mapping[str, Any],
                     xp: Any = NUMPY_OPS) -> Any:
        """Log mean loss at ``log_inputs`` (a mapping input name -> log value)."""
        args = [log_inputs[i] for i in self.inputs]
        return self.log_mean(*args, **{p: theta[p] for p in self.params}, xp=xp)


def natural(theta: Mapping[str, Any]) -> dict[str, Any]:
    """``{log_x: v}`` -> ``{x: exp(v)}``; exponents pass through unchanged."""
    return {(k[4:] if k.startswith("log_") else k): (np.exp(v) if k.startswith("log_") else v)
            for k, v in theta.items()}


LAWS: dict[str, Law] = {
    "chinchilla": Law(
        "chinchilla", ("n", "d"), ("log_e", "log_a", "log_b", "alpha", "beta"),
        log_mean=log_chinchilla,
        centring={"log_a": ("n", "alpha"), "log_b": ("d", "beta")},
        floor=chinchilla_floor, tokens_needed=chinchilla_tokens_needed,
        optimal=chinchilla_optimal, terms=chinchilla_terms,
        citation="Hoffmann et al. (2022), arXiv:2203.15556, approach 3",
        formula="L(N, D) = E + A/N^alpha + B/D^beta",
    ),
    "kaplan": Law(
        "kaplan", ("n", "d"), ("log_n_c", "log_d_c", "alpha_n", "alpha_d"),
        log_mean=log_kaplan,
        centring={"log_n_c": ("n", None), "log_d_c": ("d", None)},
        scaled={"log_n_c": "alpha_n", "log_d_c": "alpha_d"},
        floor=kaplan_floor, tokens_needed=kaplan_tokens_needed, optimal=kaplan_optimal,
        citation="Kaplan et al. (2020), arXiv:2001.08361, eq. 1.5",
        formula="L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
    ),
    "kaplan_e": Law(
        "kaplan_e", ("n", "d"), ("log_e", "log_n_c", "log_d_c", "alpha_n", "alpha_d"),
        log_mean=log_kaplan_e,
        centring={"log_n_c": ("n", None), "log_d_c": ("d", None)},
        scaled={"log_n_c": "alpha_n", "log_d_c": "alpha_d"},
        floor=kaplan_e_floor, tokens_needed=kaplan_tokens_needed, optimal=kaplan_optimal,
        citation="Kaplan et al. (2020), arXiv:2001.08361, eq. 1.5, plus an irreducible loss E",
        formula="L(N, D) = E + [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
    ),
    "chinchilla_broken": Law(
        "chinchilla_broken", ("n", "d"),
        ("log_e", "log_a", "log_b", "alpha", "beta", "log_n_b", "alpha_2"),
        log_mean=log_chinchilla_broken,
        centring={"log_a": ("n", "alpha"), "log_b": ("d", "beta"), "log_n_b": ("n", None)},
        floor=chinchilla_broken_floor, tokens_needed=chinchilla_broken_tokens_needed,
        citation="Hoffmann et al. (2022), arXiv:2203.15556, approach 3, with the N term smoothly "
                 "broken as in Caballero et al. (2022), arXiv:2210.14891, eq. 1",
        formula="L(N, D) = E + A/N^alpha (1 + (N/N_b)^(1/f))^(-(alpha_2 - alpha) f) + B/D^beta",
    ),
    "farseer": Law(
        "farseer", ("n", "d"), ("log_e", "log_a", "log_b", "alpha", "beta", "gamma"),
        log_mean=log_farseer,
        centring={"log_a": ("n", "alpha"), "log_b": (("d", "beta"), ("n", "gamma"))},
        floor=chinchilla_floor, tokens_needed=farseer_tokens_needed, optimal=farseer_optimal,
        terms=farseer_terms,
        citation="Li et al. (2025), arXiv:2506.10972 (Farseer), parsimonious: the data term's "
                 "coefficient is a power of N",
        formula="L(N, D) = E + A/N^alpha + B/(N^gamma D^beta)",
    ),
    "kaplan_n": Law(
        "kaplan_n", ("n",), ("log_n_c", "alpha_n"), log_mean=log_kaplan_n,
        centring={"log_n_c": ("n", None)}, scaled={"log_n_c": "alpha_n"},
        floor=kaplan_floor,
        citation="Kaplan et al. (2020), arXiv:2001.08361, eq. 1.1",
        formula="L(N) = (N_c/N)^alpha_N",
    ),
    "kaplan_d": Law(
        "kaplan_d", ("d",), ("log_d_c", "alpha_d"), log_mean=log_kaplan_d,
        centring={"log_d_c": ("d", None)}, scaled={"log_d_c": "alpha_d"},
        tokens_needed=kaplan_d_tokens_needed,
        citation="Kaplan et al. (2020), arXiv:2001.08361, eq. 1.2",
        formula="L(D) = (D_c/D)^alpha_D",
    ),
}
