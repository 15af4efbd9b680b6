r"""Which run to train next: rank candidate runs by how much they narrow the band at a target.

Preposterior analysis (Raiffa & Schlaifer 1961; the expected value of sample information): for
a candidate run at :math:`x = (N, D)`, simulate its outcome :math:`y` from the current
posterior predictive (the law plus run-to-run noise), update the posterior with it, and measure
the width of the 90% predictive band at the target :math:`x^*`; average over simulated outcomes
and divide the expected narrowing by the candidate's cost, :math:`6ND` FLOPs:

.. math:: \mathrm{gain}(x) = \frac{W_0 - \mathbb{E}_{y \sim p(y \mid x, \mathcal D)}
          \left[W(x^* \mid \mathcal D \cup \{(x, y)\})\right]}{6 N D}

The update is importance reweighting of the current draws, exact in the limit of many draws
because the new run enters the posterior only through its likelihood:
:math:`w_s \propto p(y \mid \theta_s, x)`, with the fit's own likelihood (Normal or Student-t
on log loss). Its accuracy is reported as the Kish effective sample size
:math:`(\sum w)^2 / \sum w^2` (small values mean a refit is needed), and
:func:`refit_check` compares it with NUTS refits. The predictive band also carries the fit's
extrapolation discrepancy (:mod:`bayes_scaling.fitting.calibrate`), whose scale grows with the
target's
distance from the runs: a candidate that extends the runs toward the target shrinks it.

With a target loss, a second score is the expected reduction of the uncertainty of the verdict
:math:`p = P(L \le L^*)`: by the martingale property :math:`\mathbb E_y[p(y)] = p_0`, so the
expected drop of the Bernoulli variance :math:`p(1-p)` is :math:`\mathrm{Var}_y[p(y)]`.

Numpy only: never imports PyMC (:func:`refit_check` fits lazily).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import DEFAULT_INTERVAL, FLOPS_PER_PARAM_TOKEN
from bayes_scaling.data.runs import load_runs
from bayes_scaling.data.support import DISCREPANCY_VARS, decades_outside
from bayes_scaling.errors import QueryError
from bayes_scaling.evaluate.drawset import DrawSet, Target, draw_set, extend_box
from bayes_scaling.fitting.fit import fit as run_fit
from bayes_scaling.fitting.result import ScalingFit, with_posterior
from bayes_scaling.query.predict import flat, predict_loss, resolve_group
from bayes_scaling.query.summarize import jsonable
from bayes_scaling.types import SeedLike

#: Simulated outcomes per candidate.
DEFAULT_N_SIM = 128
#: Below this effective sample size the reweighted posterior is flagged (refit to trust it).
MIN_ESS = 100.0
#: Default candidate grid (:func:`candidate_grid`): how many sizes, which token ratios.
DEFAULT_N_SIZES = 12
DEFAULT_TOKENS_PER_PARAM: tuple[float, ...] = (10.0, 20.0, 40.0)
METRICS = ("band", "p_target")
#: Band reductions below this fraction of the current band are Monte Carlo noise (see _rank).
NOISE_FLOOR = 1e-3


# ------------------------------------------------------------------------------ scoring
def weighted_band(z: np.ndarray, w: np.ndarray, interval: float, *,
                  chunk: int = 16) -> np.ndarray:
    """Width (loss units) of the equal-tailed ``interval`` of log losses ``z`` per weight row.

    ``z``: ``(S, K)`` draws and noise replicates; ``w``: ``(M, S)`` weights of the draws (each
    row sums to 1); every replicate of a draw carries ``1/K`` of its weight. Returns ``(M,)``:
    ``exp(q_hi) - exp(q_lo)``. Rows are processed ``chunk`` at a time to bound memory.
    """
    k = z.shape[1]
    zf = z.reshape(-1)
    order = np.argsort(zf, kind="stable")
    owner = order // k  # the draw each sorted value belongs to
    zs = zf[order]
    lo_p, hi_p = (1 - interval) / 2, (1 + interval) / 2
    out = np.empty(w.shape[0])
    for start in range(0, w.shape[0], chunk):
        c = np.cumsum(w[start:start + chunk][:, owner], axis=1) / k
        # smallest value whose cumulative weight reaches p (inverted cdf), with a tolerance
        # for the rounding of the cumulative sum
        lo = np.minimum((c < lo_p - 1e-12).sum(axis=1), zf.size - 1)
        hi = np.minimum((c < hi_p - 1e-12).sum(axis=1), zf.size - 1)
        out[start:start + chunk] = np.exp(zs[hi]) - np.exp(zs[lo])
    return out


def _p_below(z: np.ndarray, w: np.ndarray, log_target: float) -> np.ndarray:
    """``P(log L <= log L*)`` per weight row: ``(M,)``."""
    return w @ (z <= log_target).mean(axis=1)


def _normalise(log_w: np.ndarray) -> np.ndarray:
    w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def score_candidate(ds: DrawSet, n: float, d: float, target: Target, *, band: str,
                    interval: float, n_sim: int, rng: np.random.Generator) -> dict[str, float]:
    """Preposterior scores of one candidate run at ``(n, d)`` (see the module docs)."""
    y = ds.simulate(n, d, n_sim, rng)
    w = _normalise(ds.log_w[None, :] + ds.log_lik(y, ds.log_mu(n, d)))
    ess = 1.0 / np.sum(w**2, axis=1)
    z = ds.target_draws(target, band, extend_box(ds.box, n, d))
    widths = weighted_band(z, w, interval)
    out = {"band_after": float(widths.mean()), "band_after_sd": float(widths.std()),
           "ess_min": float(ess.min()), "ess_median": float(np.median(ess))}
    if target.loss is not None:
        h = (z <= float(np.log(target.loss))).mean(axis=1)  # P(below target) per draw
        p = w @ h
        w0 = ds.weights
        # first-order Monte Carlo bias of Var(p): reweighting a finite set of draws moves p
        # by ~ sqrt((sum w^2 - sum w0^2) Var(h)) even when y says nothing about the target
        bias = float(np.mean(np.sum(w**2, axis=1)) - np.sum(w0**2)) * float(
            w0 @ (h - w0 @ h) ** 2)
        out.update({"p_target_after_mean": float(p.mean()),
                    "p_target_var": max(float(p.var()) - bias, 0.0)})
    return out


def _candidates(candidates: Any) -> pd.DataFrame:
    """Candidates as a frame with ``n_params``, ``n_tokens``, ``flops``, ``tokens_per_param``."""
    if isinstance(candidates, pd.DataFrame):
        frame = candidates[["n_params", "n_tokens"]].astype(float)
    else:
        try:
            frame = pd.DataFrame([tuple(map(float, c)) for c in candidates],
                                 columns=["n_params", "n_tokens"])
        except (TypeError, ValueError) as exc:
            raise QueryError(f"candidates must be (n_params, n_tokens) pairs ({exc})") from None
    vals = frame.to_numpy()
    if frame.empty or not np.all(np.isfinite(vals)) or np.any(vals <= 0):
        raise QueryError("candidates must be a non-empty list of positive (n_params, n_tokens)")
    frame = frame.reset_index(drop=True)
    frame["flops"] = FLOPS_PER_PARAM_TOKEN * frame["n_params"] * frame["n_tokens"]
    frame["tokens_per_param"] = frame["n_tokens"] / frame["n_params"]
    return frame


def candidate_grid(fit: ScalingFit, target: Any, *, sizes: Sequence[float] | None = None,
                   n_sizes: int = DEFAULT_N_SIZES,
                   tokens_per_param: Sequence[float] = DEFAULT_TOKENS_PER_PARAM) -> pd.DataFrame:
    """Candidate runs: ``sizes`` (default: ``n_sizes`` sizes from the runs' median N to the
    target's N, log-spaced) times ``tokens_per_param`` ratios, with their FLOPs."""
    tgt = Target.of(target)
    if sizes is None:
        lo = float(np.median(fit.runs.n))
        sizes = np.geomspace(lo, max(tgt.n_params, lo * 1.01), n_sizes)
    pairs = [(float(n), float(n) * float(r)) for n in sizes for r in tokens_per_param]
    return _candidates(pairs)


def rank_next_runs(fit: ScalingFit | None, candidates: Any = None, *, target: Any,
                   budget: float | None = None, group: str | None = None,
                   band: str = "predictive", metric: str = "band",
                   interval: float = DEFAULT_INTERVAL, n_sim: int = DEFAULT_N_SIM,
                   n_draws: int | None = None, draws: DrawSet | None = None,
                   random_seed: SeedLike = None) -> pd.DataFrame:
    """Rank candidate next runs by expected narrowing of the band at ``target`` per FLOP.

    Parameters
    ----------
    fit
        A fit of an L(N, D) law (may be ``None`` when ``draws`` and ``candidates`` are given).
    candidates
        ``(n_params, n_tokens)`` pairs or a frame with those columns; ``None``:
        :func:`candidate_grid`.
    target
        The planned run: ``(n_params, n_tokens[, loss])``, a mapping or a :class:`Target`.
    budget
        FLOPs available for the next run; dearer candidates are left out.
    group
        Data distribution of the target and candidates (``"new"``: unseen).
    band
        ``"predictive"`` (default: where the planned run would land) or ``"law"``.
    metric
        ``"band"``: expected narrowing of the ``interval`` band (loss units) per FLOP;
        ``"p_target"`` (needs a target loss): expected reduction of the variance of the
        verdict ``P(L <= L*)``, per FLOP.
    n_sim
        Simulated outcomes per candidate.
    n_draws
        Posterior draws used (a random subset; ``None``: all).
    draws
        A :class:`DrawSet` to start from (sequential designs); overrides ``n_draws``.
    random_seed
        Seed of the draws subset, the noise replicates and the simulated outcomes.

    Returns
    -------
    pandas.DataFrame
        One row per affordable candidate, best first: ``rank``, ``n_params``, ``n_tokens``,
        ``tokens_per_param``, ``flops``, ``band_now``, ``band_after`` (expected), its spread
        over outcomes ``band_after_sd``, ``reduction``, ``reduction_per_flop``,
        ``reduction_per_eflop`` (per 1e18 FLOPs; 0 unless ``measurable``: a gain above Monte
        Carlo noise), ``ess_min`` and ``ess_median`` of the reweighting, ``decades_past_c``
        (the candidate's compute past the largest run) and, with a target loss,
        ``p_target_now`` and ``p_target_sd`` (spread of the updated verdict). ``attrs`` holds
        the settings, ``band_now`` and ``warnings``.
    """
    tgt = Target.of(target)
    if metric not in METRICS:
        raise QueryError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if metric == "p_target" and tgt.loss is None:
        raise QueryError("metric 'p_target' needs a target loss")
    if band not in ("law", "predictive"):
        raise QueryError(f"band must be 'law' or 'predictive', got {band!r}")
    if not 0 < interval < 1:
        raise QueryError(f"interval must be in (0, 1), got {interval}")
    rng = np.random.default_rng(random_seed)
    if fit is None and (draws is None or candidates is None):
        raise QueryError("rank_next_runs needs a fit, or both draws and candidates")
    ds = draws if draws is not None else draw_set(fit, group=group, n_draws=n_draws,
                                                  random_seed=rng)
    frame = _candidates(candidate_grid(fit, tgt) if candidates is None else candidates)
    n_all, cheapest = len(frame), float(frame["flops"].min())
    if budget is not None:
        if not budget > 0:
            raise QueryError(f"budget must be positive FLOPs, got {budget}")
        frame = frame[frame["flops"] <= budget].reset_index(drop=True)
        if frame.empty:
            raise QueryError(f"no candidate fits the budget of {budget:.3g} FLOPs (the "
                             f"cheapest needs {cheapest:.3g})")
    out = _rank(ds, frame, tgt, band=band, metric=metric, interval=interval, n_sim=n_sim,
                rng=rng, meta={"budget": budget, "n_over_budget": n_all - len(frame),
                               "group": group if fit is None else resolve_group(fit, group)})
    if fit is not None and fit.method != "nuts":
        out.attrs["warnings"].append(
            f"the fit's draws come from {fit.method!r}, not a posterior: reweighting them by "
            "the likelihood of a new run is a rough approximation; rank on a NUTS fit")
    return out


def _rank(ds: DrawSet, frame: pd.DataFrame, tgt: Target, *, band: str, metric: str,
          interval: float, n_sim: int, rng: np.random.Generator,
          meta: Mapping[str, Any]) -> pd.DataFrame:
    z0 = ds.target_draws(tgt, band)
    w0 = ds.weights[None, :]
    now = float(weighted_band(z0, w0, interval)[0])
    rows = [score_candidate(ds, n, d, tgt, band=band, interval=interval, n_sim=n_sim, rng=rng)
            for n, d in zip(frame["n_params"], frame["n_tokens"], strict=True)]
    out = pd.concat([frame, pd.DataFrame(rows)], axis=1)
    out.insert(4, "band_now", now)
    out["reduction"] = now - out["band_after"]
    # a gain within Monte Carlo noise (2 standard errors over the simulated outcomes, or
    # NOISE_FLOOR of the band: the reweighting of finite draws) is not a measurable gain
    floor = np.maximum(2 * out["band_after_sd"] / np.sqrt(n_sim), NOISE_FLOOR * now)
    out["measurable"] = out["reduction"] > floor
    out["reduction_per_flop"] = np.where(out["measurable"], out["reduction"], 0.0) / out["flops"]
    out["reduction_per_eflop"] = out["reduction_per_flop"] * 1e18
    far = decades_outside(ds.box, out["n_params"].to_numpy(), out["n_tokens"].to_numpy())
    out["decades_past_c"] = far["c_past_max"]
    key = "reduction_per_flop"
    if tgt.loss is not None:
        out["p_target_now"] = float(_p_below(z0, w0, float(np.log(tgt.loss)))[0])
        out["p_target_sd"] = np.sqrt(out.pop("p_target_var"))
        out["p_uncertainty_reduction_per_flop"] = out["p_target_sd"] ** 2 / out["flops"]
        if metric == "p_target":
            key = "p_uncertainty_reduction_per_flop"
    out = out.sort_values(key, ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    warn = []
    if (out["ess_min"] < MIN_ESS).any():
        k = int((out["ess_min"] < MIN_ESS).sum())
        warn.append(f"{k} candidate(s) leave fewer than {MIN_ESS:g} effective draws after "
                    "reweighting for some outcomes: their scores are rough; check with "
                    "refit_check (NUTS refits)")
    out.attrs = {"target": tgt.__dict__, "band": band, "metric": metric, "interval": interval,
                 "band_now": now, "n_sim": n_sim, "n_draws": ds.size, "ess_now": ds.ess,
                 "warnings": warn, **dict(meta)}
    return out


# ------------------------------------------------------------------------------ checks, plots
def with_run(fit: ScalingFit, n: float, d: float, loss: float, group: str) -> Any:
    """The fit's run table plus one run at ``(n, d)`` with ``loss`` in ``group``."""
    frame = fit.runs.frame
    row = dict.fromkeys(frame.columns, np.nan)
    row.update({"run_id": f"next-{len(frame) + 1}", "group": group, "n_params": n,
                "n_tokens": d, "flops": FLOPS_PER_PARAM_TOKEN * n * d, "loss": loss})
    new = pd.concat([frame, pd.DataFrame([row])[frame.columns]], ignore_index=True)
    return load_runs(new.dropna(axis=1, how="all"), group_col="group",
                     param_count=fit.runs.param_count)


def refit_check(fit: ScalingFit, candidate: tuple[float, float], target: Any, *,
                outcomes: Sequence[float] = (0.1, 0.5, 0.9), group: str | None = None,
                interval: float = DEFAULT_INTERVAL,
                fit_kwargs: Mapping[str, Any] | None = None,
                random_seed: int = 0) -> pd.DataFrame:
    """Importance reweighting against NUTS refits for one candidate run (slow).

    For each quantile in ``outcomes`` of the candidate's predictive log loss, the run is added
    to the table and the model refitted by NUTS (``calibrate=False``; the fit's ``kappa`` and
    ``tau0`` draws are carried over, so only the law's posterior and the box change), and the
    ``interval`` band widths at the target (law and predictive, loss units) are compared with
    those of the reweighted draws. Returns one row per outcome: ``quantile``, ``loss``, ``ess``,
    ``law_is``, ``law_refit``, ``predictive_is``, ``predictive_refit``.
    """
    tgt = Target.of(target)
    g = resolve_group(fit, group)
    rng = np.random.default_rng(random_seed)
    ds = draw_set(fit, group=g, random_seed=rng)
    n, d = map(float, candidate)
    ys = np.quantile(ds.simulate(n, d, 4000, rng), outcomes)
    kw = {"chains": 2, "draws": 1000, "tune": 1000, **dict(fit_kwargs or {}), "calibrate": False}
    rows = []
    for q, y in zip(outcomes, ys, strict=True):
        after = ds.observe(n, d, float(y))
        w = after.weights[None, :]
        refit = run_fit(fit.spec, with_run(fit, n, d, float(np.exp(y)), g),
                        random_seed=int(rng.integers(2**31 - 1)), **kw)
        shape = (refit.posterior.sizes["chain"], refit.posterior.sizes["draw"])
        carry = {k: flat(fit.posterior[k])[rng.integers(0, ds.size, shape)]
                 for k in DISCREPANCY_VARS if k in fit.posterior}
        if carry:
            refit = with_posterior(refit, {k: xr.DataArray(v, dims=("chain", "draw"))
                                           for k, v in carry.items()})
        row = {"quantile": q, "loss": float(np.exp(y)), "ess": after.ess,
               "converged": refit.diagnostics.passed}
        for band in ("law", "predictive"):
            row[f"{band}_is"] = float(weighted_band(after.target_draws(tgt, band), w,
                                                    interval)[0])
            s = predict_loss(refit, tgt.n_params, tgt.n_tokens, group=g, band=band,
                             interval=interval, random_seed=random_seed).summary
            row[f"{band}_refit"] = float(s["upper"].iloc[0] - s["lower"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def table_text(table: pd.DataFrame, top: int = 10) -> str:
    """The ranking as plain text (the CLI's output)."""
    a = table.attrs
    t = a.get("target", {})
    goal = "" if t.get("loss") is None else f", loss <= {t['loss']:g}"
    head = (f"target N={t.get('n_params', np.nan):.3g}, D={t.get('n_tokens', np.nan):.3g}{goal}; "
            f"{a.get('interval', DEFAULT_INTERVAL):.0%} {a.get('band', '')} band now "
            f"{a.get('band_now', np.nan):.4g} nats; ranked by {a.get('metric', 'band')} "
            f"gain per FLOP ({a.get('n_sim', '?')} simulated outcomes x {a.get('n_draws', '?')} "
            f"draws)")
    cols = [c for c in ("rank", "n_params", "n_tokens", "tokens_per_param", "flops",
                        "band_after", "reduction", "reduction_per_eflop", "p_target_sd",
                        "ess_min", "measurable") if c in table.columns]
    body = table.head(top)[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}")
    extra = []
    if a.get("n_over_budget"):
        extra.append(f"{a['n_over_budget']} candidate(s) over the budget left out")
    return "\n".join([head, body, *extra, *(f"WARNING: {w}" for w in a.get("warnings", []))])


def ranking_json(table: pd.DataFrame) -> dict[str, Any]:
    """JSON-ready form of a ranking: ``settings`` (its attrs) and ``records`` (rows)."""
    return jsonable({"settings": dict(table.attrs), "records": table.to_dict("records")})


#: Candidate runs of the risk report cost at most this fraction of the planned run's FLOPs.
REPORT_BUDGET_FRACTION = 0.1
