r"""Diagnostics of a fitted scaling law: the run-level pattern checks plus the posterior's own.

:func:`diagnose` runs the detectors of :mod:`bayes_scaling.evaluate.patterns` on a fit's runs,
adds the
posterior predictive p-value (Gelman, Meng & Stern 1996) and the PSIS-LOO Pareto k (Vehtari,
Gelman & Gabry 2017) of each run, the slope differences between groups, how far a target lies
past the runs, and -- with ``full=True`` or fits the caller passes -- the full-posterior
comparisons by PSIS-LOO: the broken law vs the plain one, pooled vs shared exponents (an ELPD
difference under 4 is small: Sivula, Magnusson & Vehtari 2022, arXiv:2008.10296).
:func:`choose_likelihood` picks Normal or Student-t for ``--likelihood auto``. The detectors
themselves are :mod:`bayes_scaling.evaluate.patterns`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bayes_scaling.constants import GROUP
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import FAR_DECADES_C, decades_outside
from bayes_scaling.errors import QueryError
from bayes_scaling.evaluate.loo import loo, n_bad_pareto_k
from bayes_scaling.evaluate.patterns import (
    PARETO_K,
    PPC_LEVEL,
    ROBUST_ADVICE,
    DiagnosisResult,
    Finding,
    check_outliers,
    diagnose_runs,
    finding,
    group_fits,
)
from bayes_scaling.fitting.fit import fit as run_fit
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.spec import ModelSpec, load_spec
from bayes_scaling.query.predict import fit_box, flat, group_theta
from bayes_scaling.types import ProgressFn, SeedLike

#: An ELPD difference must exceed max(this, 2 se) to favour the richer model.
ELPD_MIN = 4.0
#: NUTS settings of the full (LOO) checks unless the caller gives others.
FULL_FIT_KWARGS: dict[str, Any] = {"chains": 2, "draws": 500, "tune": 500, "calibrate": False}
#: Models the full checks fit: the broken law, and the pooled-exponent variant.
BROKEN_MODEL, SLOPES_MODEL, PLAIN_MODEL = "broken", "chinchilla_slopes", "chinchilla"


# ------------------------------------------------------------------------------ posterior
def posterior_run_checks(fit_: ScalingFit) -> pd.DataFrame:
    r"""Per run: posterior predictive p-value (two-sided) and PSIS-LOO Pareto k.

    The p-value is exact given each draw, :math:`p_i = \frac1S\sum_s F((y_i - \mu_{is})/
    \sigma_s)` with ``F`` the Normal or Student-t cdf of the fit's likelihood, then
    ``2 min(p, 1 - p)``.
    """
    post, runs = fit_.posterior, fit_.runs
    sigma = flat(post["sigma"])[:, None]
    nu = flat(post["nu"])[:, None] if "nu" in post else None
    p = np.empty(runs.n_runs)
    for k, g in enumerate(runs.group_names):
        sel = runs.group_index == k
        theta = {p_: v[:, None] for p_, v in group_theta(fit_, g).items()}
        mu = fit_.law.evaluate_log({"n": runs.log_n[sel][None, :],
                                    "d": runs.log_d[sel][None, :]}, theta)
        u = (runs.log_loss[sel][None, :] - mu) / sigma
        cdf = stats.t.cdf(u, df=nu) if nu is not None else stats.norm.cdf(u)
        p[sel] = cdf.mean(axis=0)
    k_hat = np.asarray(loo(fit_).pareto_k, dtype=float)
    return pd.DataFrame({"ppc_p": 2 * np.minimum(p, 1 - p), "pareto_k": k_hat})


def _merge_posterior_outliers(res: DiagnosisResult, fit_: ScalingFit) -> DiagnosisResult:
    """Add ``ppc_p`` and ``pareto_k`` to the run table and to the outlier finding."""
    extra = posterior_run_checks(fit_)
    table = res.runs.assign(ppc_p=extra["ppc_p"].to_numpy(),
                            pareto_k=extra["pareto_k"].to_numpy())
    level = PPC_LEVEL / max(fit_.runs.n_runs, 1)
    surprising = table["ppc_p"].to_numpy() < level
    influential = table["pareto_k"].to_numpy() > PARETO_K
    table["flagged"] = table["flagged"].to_numpy() | surprising
    old = res.get("outliers")
    n_flag = int(table["flagged"].sum())
    parts = [old["message"].replace(ROBUST_ADVICE, "")]
    if surprising.any():
        parts.append(f"{int(surprising.sum())} run(s) have a posterior predictive p-value "
                     f"below {level:.1e} ({PPC_LEVEL:g} / runs): "
                     + ", ".join(table.loc[surprising, "run_id"].head(5)))
    if influential.any():
        parts.append(f"{int(influential.sum())} run(s) have Pareto k > {PARETO_K:g} "
                     "(influential: LOO is unreliable for them): "
                     + ", ".join(table.loc[influential, "run_id"].head(5)))
    if n_flag and fit_.spec.likelihood.family == "normal":
        parts.append("refit with a Student-t likelihood (bayes-scaling fit --likelihood "
                     "studentt, or auto)")
    elif n_flag and "nu" in fit_.posterior:
        parts.append(f"the fit's Student-t likelihood down-weights them (posterior median nu "
                     f"{float(np.median(flat(fit_.posterior['nu']))):.1f})")
    new = finding("outliers", n_flag > 0 or old["severity"] == "warning", old["value"],
                  old["threshold"], old["rule"], "; ".join(parts),
                  runs=list(table.loc[table["flagged"], "run_id"]),
                  influential=list(table.loc[influential, "run_id"]),
                  max_pareto_k=float(table["pareto_k"].max()),
                  min_ppc_p=float(table["ppc_p"].min()))
    findings = [new if f["code"] == "outliers" else f for f in res.findings]
    return DiagnosisResult(findings, table, res.meta)


def slope_differences(fit_: ScalingFit, *, interval: float = 0.9) -> pd.DataFrame:
    """Posterior of every pairwise difference of group exponents (pooled-exponent fits).

    One row per exponent and pair of groups: ``median``, ``lower``, ``upper`` (equal-tailed
    ``interval``) of ``param[group_a] - param[group_b]``, and ``p_positive``.
    """
    rows = []
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    for p in fit_.law.exponents:
        da = fit_.posterior[p]
        if GROUP not in da.dims:
            continue
        names = [str(g) for g in da[GROUP].values]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                diff = flat(da.sel({GROUP: a})) - flat(da.sel({GROUP: b}))
                rows.append({"param": p, "group_a": a, "group_b": b,
                             "median": float(np.median(diff)),
                             "lower": float(np.quantile(diff, lo)),
                             "upper": float(np.quantile(diff, hi)),
                             "p_positive": float(np.mean(diff > 0))})
    return pd.DataFrame(rows, columns=["param", "group_a", "group_b", "median", "lower",
                                       "upper", "p_positive"])


def _chain(fit_: ScalingFit, c: int) -> ScalingFit:
    """``fit_`` restricted to chain ``c`` (one mode of a posterior whose chains did not mix)."""
    import arviz as az  # lazy: ArviZ costs ~1 s; only a fit whose chains split needs it

    return replace(fit_, idata=az.InferenceData(posterior=fit_.posterior.isel(chain=[c])))


def loo_difference(base: ScalingFit, alt: ScalingFit) -> dict[str, Any]:
    """ELPD (PSIS-LOO) of ``alt`` minus ``base`` on the same runs, with its standard error.

    When ``alt`` failed the convergence gate (e.g. a broken law whose chains settled in
    different modes), the difference is also computed chain by chain (``per_chain``): a
    mixture of unmixed modes is no posterior, but each chain is a local approximation of one.
    """
    if base.runs.fingerprint() != alt.runs.fingerprint():
        raise QueryError("LOO compares fits of the same runs; these were fitted on different "
                         "tables")
    la, lb = loo(base), loo(alt)

    def diff(other: Any) -> tuple[float, float]:
        d = np.asarray(other.loo_i) - np.asarray(la.loo_i)
        return float(d.sum()), float(math.sqrt(d.size * d.var()))

    total, se = diff(lb)
    out: dict[str, Any] = {"elpd_base": float(la.elpd_loo), "elpd_alt": float(lb.elpd_loo),
                           "diff": total, "se": se, "bad_k_base": n_bad_pareto_k(la),
                           "bad_k_alt": n_bad_pareto_k(lb), "converged": alt.diagnostics.passed
                           and base.diagnostics.passed}
    if not alt.diagnostics.passed and alt.posterior.sizes["chain"] > 1:
        out["per_chain"] = [dict(zip(("diff", "se"), diff(loo(_chain(alt, c))), strict=True))
                            for c in range(alt.posterior.sizes["chain"])]
    return out


def _loo_finding(code: str, base: ScalingFit, alt: ScalingFit, what: str,
                 meaning: str, **detail: Any) -> Finding:
    ld = loo_difference(base, alt)
    thr = max(ELPD_MIN, 2.0 * ld["se"])
    if "per_chain" in ld:  # judged chain by chain: every chain must agree
        pc = ld["per_chain"]
        hit = all(c["diff"] > max(ELPD_MIN, 2.0 * c["se"]) for c in pc)
        lo, hi = min(c["diff"] for c in pc), max(c["diff"] for c in pc)
        verdict = (f"the {what} fit's chains did not mix (max r-hat "
                   f"{alt.diagnostics.max_rhat:.2f}: several modes); chain by chain its ELPD "
                   f"difference is {lo:+.1f} to "
                   f"{hi:+.1f}: " + (f"every mode predicts left-out runs better; {meaning}"
                                     if hit else "the modes do not all beat the plain law"))
        return finding(code, hit, lo, max(ELPD_MIN, 2.0 * max(c["se"] for c in pc)),
                       "every chain's value > threshold", verdict, loo=ld, **detail)
    hit = ld["diff"] > thr
    verdict = (f"the {what} predicts left-out runs better: ELPD {ld['diff']:+.1f} ± "
               f"{ld['se']:.1f} (> {thr:.1f}); {meaning}" if hit else
               f"the {what} does not predict left-out runs better: ELPD {ld['diff']:+.1f} ± "
               f"{ld['se']:.1f} (<= {thr:.1f})")
    if not ld["converged"]:
        verdict += " (a fit failed the convergence gate: read this with care)"
    return finding(code, hit, ld["diff"], thr, "value > threshold", verdict, loo=ld, **detail)


def broken_law_check(plain: ScalingFit, broken: ScalingFit) -> Finding:
    """The broken-law model against the plain one by PSIS-LOO (finding ``broken_law_loo``).

    The break is described per chain (chains may sit in different modes: a flattening above
    the break with a smaller E, or a steepening with a larger one).
    """
    post = broken.posterior
    modes = [{p: float(post[p].isel(chain=c).median()) for p in ("alpha", "alpha_2", "log_n_b",
                                                                  "log_e")}
             for c in range(post.sizes["chain"])]
    th = {p: float(np.median(flat(post[p]))) for p in ("alpha", "alpha_2", "log_n_b")}
    groups: list[list[dict[str, float]]] = []  # chains in the same mode, by break and slope
    for m in modes:
        home = next((g for g in groups if abs(g[0]["alpha_2"] - m["alpha_2"]) < 0.1
                     and abs(g[0]["log_n_b"] - m["log_n_b"]) < 0.5), None)
        if home is None:
            groups.append([m])
        else:
            home.append(m)
    seen = [f"slope {g[0]['alpha']:.2f} -> {g[0]['alpha_2']:.2f} near N = "
            f"{math.exp(g[0]['log_n_b']):.2g} (E = {math.exp(g[0]['log_e']):.2f}; "
            f"{len(g)} chain{'s' if len(g) > 1 else ''})" for g in groups]
    meaning = "the N slope moves: " + "; or ".join(seen) + " (posterior medians)"
    return _loo_finding("broken_law_loo", plain, broken, "broken power law", meaning,
                        posterior_medians=th, chain_medians=modes)


def same_slope_check(shared: ScalingFit, pooled: ScalingFit, *,
                     interval: float = 0.9) -> Finding:
    """"Same slope?": shared vs partially pooled exponents by LOO, plus the slope differences."""
    diffs = slope_differences(pooled, interval=interval)
    if diffs.empty:
        raise QueryError(f"{pooled.spec.name}: no exponent varies by group; fit "
                         f"{SLOPES_MODEL!r} on runs with two or more groups")
    i = int(np.argmax(np.abs(diffs["median"].to_numpy())))
    r = diffs.iloc[i]
    meaning = (f"largest slope difference {r['param']}[{r['group_a']}] - "
               f"{r['param']}[{r['group_b']}] = {r['median']:+.3f} ({interval:.0%}: "
               f"{r['lower']:+.3f} to {r['upper']:+.3f}); the 'offset, not slope' assumption "
               "fails for these groups")
    out = _loo_finding("same_slope_loo", shared, pooled, "pooled-exponent model", meaning,
                       slope_differences=diffs.to_dict("records"))
    if out["severity"] == "info":
        out["message"] += (f"; largest slope difference {r['param']} {r['group_a']} - "
                           f"{r['group_b']} = {r['median']:+.3f} ({r['lower']:+.3f} to "
                           f"{r['upper']:+.3f})")
    return out


def check_extrapolation(fit_: ScalingFit, n_params: float, n_tokens: float) -> Finding:
    """How far the target (N, D) lies outside the runs, in decades of N, D and C."""
    far = decades_outside(fit_box(fit_), np.array([n_params]), np.array([n_tokens]))
    dn, dd, dc = (float(far[k][0]) for k in ("n", "d", "c_past_max"))
    hit = dc > FAR_DECADES_C
    msg = (f"the target lies {dc:.2f} decades of compute past the largest run "
           f"({dn:.2f} decades outside the runs in N, {dd:.2f} in D)"
           + (f": more than {FAR_DECADES_C:g}, the law's form is untested there" if hit else ""))
    return finding("extrapolation", hit, dc, FAR_DECADES_C, "value > threshold", msg,
                   decades_n=dn, decades_d=dd, decades_c=dc)


def _fit_law_for_checks(fit_: ScalingFit) -> str:
    if fit_.spec.law not in LAWS:
        raise QueryError(f"diagnose works on L(N, D) fits; {fit_.spec.name} is a "
                         f"{fit_.spec.law} fit")
    return fit_.spec.law


def _full_checks(fit_: ScalingFit, given: Mapping[str, ScalingFit],
                 kwargs: Mapping[str, Any] | None, seed: int, tell: ProgressFn) -> list[Finding]:
    """LOO comparisons: broken vs plain law, and pooled vs shared exponents.

    Fits missing from ``given`` are run by NUTS with ``kwargs``; with ``kwargs=None`` the
    comparisons that lack a fit are skipped.
    """
    def obtain(name: str) -> ScalingFit | None:
        if name in given:
            return given[name]
        if kwargs is None:
            return None
        tell(f"diagnose --full: fitting {name}")
        return run_fit(name, fit_.runs, random_seed=seed, **dict(kwargs))

    pooled_exponents = any(GROUP in fit_.posterior[p].dims for p in fit_.law.exponents)
    plain_ok = fit_.method == "nuts" and fit_.spec.law == "chinchilla" and not pooled_exponents
    plain = fit_ if plain_ok else obtain(PLAIN_MODEL)
    if plain is None:
        return []
    out = []
    if (broken := obtain(BROKEN_MODEL)) is not None:
        out.append(broken_law_check(plain, broken))
    pooled = fit_ if pooled_exponents else obtain(SLOPES_MODEL)
    if fit_.runs.n_groups > 1 and pooled is not None:
        out.append(same_slope_check(plain, pooled))
    return out


def diagnose(fit: ScalingFit, *, target: tuple[float, float] | None = None, full: bool = False,
             fits: Mapping[str, ScalingFit] | None = None,
             fit_kwargs: Mapping[str, Any] | None = None, random_seed: SeedLike = 0,
             on_progress: ProgressFn | None = None) -> DiagnosisResult:
    """Every scaling-pattern check on a fit; one finding per check (see the module docs).

    Parameters
    ----------
    fit
        A fit of an L(N, D) law (NUTS, Huber-bootstrap or fake).
    target
        ``(n_params, n_tokens)`` of a planned run: adds the ``extrapolation`` finding.
    full
        Also compare, by PSIS-LOO, the broken-law model (``models/broken.toml``) with the
        plain one and, with several groups, the pooled-exponent model
        (``models/chinchilla_slopes.toml``) with the shared one, fitting them by NUTS with
        :data:`FULL_FIT_KWARGS` (or ``fit_kwargs``) when not given in ``fits``: slow.
    fits
        Already-fitted comparison models on the same runs, keyed by model name (``"broken"``,
        ``"chinchilla_slopes"``, ``"chinchilla"``); given ones are used even without ``full``.
    fit_kwargs
        Sampler settings of those fits (default :data:`FULL_FIT_KWARGS`).
    random_seed
        Seed of the NUTS fits of the full checks.
    on_progress
        Called with one short line per step.

    Returns
    -------
    DiagnosisResult
        Findings (with the posterior predictive p-values and Pareto k of each run when the fit
        has a posterior) and the per-run table.
    """
    tell = on_progress or (lambda _m: None)
    law = _fit_law_for_checks(fit)
    tell(f"diagnose: point-fit checks on {fit.runs.n_runs} runs")
    res = diagnose_runs(fit.runs, law)
    if fit.method != "huber-bootstrap":
        res = _merge_posterior_outliers(res, fit)
    extra: list[Finding] = []
    pooled = slope_differences(fit)
    if not pooled.empty:
        r = pooled.iloc[int(np.argmax(np.abs(pooled["median"].to_numpy())))]
        excl = bool(r["lower"] > 0 or r["upper"] < 0)
        extra.append(finding(
            "slope_posterior", excl, r["median"], 0.0, "90% interval excludes threshold",
            f"posterior slope difference {r['param']} {r['group_a']} - {r['group_b']}: "
            f"{r['median']:+.3f} (90%: {r['lower']:+.3f} to {r['upper']:+.3f})"
            + (": the groups' slopes differ" if excl else ": compatible with one slope"),
            slope_differences=pooled.to_dict("records")))
    if target is not None:
        extra.append(check_extrapolation(fit, *target))
    if full or fits:
        kw = {**FULL_FIT_KWARGS, **dict(fit_kwargs or {})}
        extra += _full_checks(fit, dict(fits or {}), kw if full else None, random_seed, tell)
    meta = {**res.meta, "model": fit.spec.name, "method": fit.method, "full": bool(full)}
    return DiagnosisResult([*res.findings, *extra], res.runs, meta)


def choose_likelihood(spec: ModelSpec | str, runs: RunTable) -> tuple[ModelSpec, Finding]:
    """Normal likelihood unless outlier runs are flagged, then the robust Student-t.

    Returns the spec with the chosen likelihood and the ``outliers`` finding behind the choice
    (the ``auto`` choice of ``bayes-scaling fit --likelihood``).
    """
    spec = load_spec(spec)
    law = spec.law if spec.law in LAWS else "chinchilla"
    f_out, _ = check_outliers(group_fits(runs, law), runs)
    family = "studentt" if f_out["severity"] == "warning" else "normal"
    return spec.with_likelihood(family), f_out
