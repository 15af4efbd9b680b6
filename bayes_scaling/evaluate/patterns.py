r"""Scaling-pattern detectors on a runs table: say when one clean power law does not fit.

Real ladders show patterns a single power law hides (DESIGN.md, "Beyond one clean power law").
Each detector here reports one number, the threshold it is judged against and what it means:

- ``outliers``: runs far from the law. Robust z of each run's log-loss residual from the Huber
  point fit, ``(r_i - median(r)) / s`` with ``s`` the MAD-based noise scale; with a posterior
  also the posterior predictive p-value (Gelman, Meng & Stern 1996) and the PSIS-LOO Pareto k
  (Vehtari, Gelman & Gabry 2017) of each run. Flagged runs are left out of the other checks.
- ``few_sizes`` and ``exponent_uncertainty``: too few distinct model sizes to identify the
  exponents; the number of sizes, and the relative standard error of each exponent from the
  Gauss-Newton covariance :math:`s^2 (J^T J)^{-1}` of the point fit.
- ``cold_start``: the smallest runs sit above the law fitted to the others. The law is refitted
  without the bottom size levels and predicts them; :math:`z = \bar r / \sqrt{s^2/m + g^T C g}`
  (``m`` runs, ``s`` the noise scale, ``g^T C g`` the variance of the refit's mean prediction).
- ``bend``: a smoothly broken power law in N (Caballero et al. 2022; law
  ``chinchilla_broken``) fits much better than Chinchilla's. Statistic: the robust
  likelihood ratio of the two Huber fits, :math:`T = 2\xi\sum_i[\rho(r_{0i}/s) -
  \rho(r_{1i}/s)]` (Ronchetti 1982), with a threshold set by simulation because the break
  location is not identified without a break (Davies 1987). A flattening toward a plateau is
  largely absorbed by a larger E in Chinchilla's form; steepening is what the check sees.
- ``slope_differs``: the groups' exponents differ ("distribution changes the offset, not the
  slope" fails). The same statistic between a fit with exponents shared across groups (offsets
  free) and separate fits per group, against :math:`\chi^2_{q(G-1)}`.

These work from point fits (:func:`bayes_scaling.fitting.baseline.huber_fit`), so they are cheap
enough
to run on every fit and over many simulated ladders (``benchmarks/bench_diagnose.py`` measures
their detection and false-alarm rates). The full-posterior comparisons -- the broken law vs the
plain one, and pooled vs shared exponents, by PSIS-LOO -- need NUTS fits; they live in
:mod:`bayes_scaling.evaluate.checks`, which also adds a posterior's own checks to these.

Sources
-------
- Caballero, Gupta, Rish, Krueger (2022), "Broken Neural Scaling Laws", arXiv:2210.14891.
- Huber (1964), "Robust estimation of a location parameter", Ann. Math. Stat. 35.
- Ronchetti (1982), "Robust testing in linear models: the infinitesimal approach", PhD thesis,
  ETH Zurich; Heritier, Cantoni, Copt & Victoria-Feser (2009), "Robust Methods in
  Biostatistics", Wiley, sec. 3.3 (the robust likelihood-ratio test).
- Davies (1987), "Hypothesis testing when a nuisance parameter is present only under the
  alternative", Biometrika 74.
- Vehtari, Gelman & Gabry (2017), doi:10.1007/s11222-016-9696-4; Sivula, Magnusson & Vehtari
  (2022), arXiv:2008.10296 (an ELPD difference under 4 is small).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import levels
from bayes_scaling.errors import BayesScalingError, QueryError
from bayes_scaling.evaluate.pointfit import (
    HUBER_K,
    PointFit,
    _centred_inputs,
    dispersion_statistic,
    log_inputs_of,
    point_fit,
)
from bayes_scaling.fitting.baseline import EXPONENT_BOUNDS
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.query.summarize import jsonable

#: A run whose robust z exceeds this is an outlier (P(|z| > 5) = 6e-7 for Normal noise).
OUTLIER_Z = 5.0
#: Family-wise level of the posterior predictive p-values (divided by the number of runs).
PPC_LEVEL = 0.05
#: PSIS-LOO Pareto k above which a run is influential and its LOO estimate unreliable.
PARETO_K = 0.7
#: Fewer distinct model sizes than this cannot pin E, A and alpha with a margin.
MIN_SIZES = 5
#: Relative standard error of an exponent above which it counts as not identified.
MAX_REL_SE = 0.25
#: Cold start: one-sided z of the smallest runs above the law fitted to the others ...
COLD_START_Z = 3.0
#: ... and their mean excess log loss (~ relative excess loss) must be at least this.
COLD_START_MIN_EXCESS = 0.005
#: The bottom block holds at least this fraction of the runs (and 3 runs), at most 1/3 of sizes.
COLD_START_FRACTION = 0.1
#: Bend: threshold of the dispersion statistic (set on simulated clean ladders, 1% false alarms
#: per group; benchmarks/bench_diagnose.py uses other seeds to measure the rate) ...
BEND_T = 10.0
#: ... and the broken law must cut the mean absolute residual by at least this fraction.
BEND_MIN_GAIN = 0.1
#: Slope difference: level of the chi-square test ...
SLOPE_LEVEL = 0.01
#: ... and the shared exponents must raise the mean absolute residual by at least this fraction.
SLOPE_MIN_GAIN = 0.05

Finding = dict[str, Any]
#: Advice attached to flagged outliers of a run table (replaced once a fit's likelihood is known).
ROBUST_ADVICE = ("; a Student-t likelihood down-weights them (bayes-scaling fit --likelihood "
                 "studentt, or auto)")


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class DiagnosisResult:
    """What the diagnostics found.

    Attributes
    ----------
    findings
        One dict per check: ``code``, ``severity`` (``"warning"`` when the pattern is found,
        ``"info"`` when checked and absent or not applicable), ``value`` (the number behind it),
        ``threshold``, ``rule`` (how value and threshold are compared), ``message`` (plain
        language) and ``detail`` (per group / per run numbers).
    runs
        Per-run table: ``run_id``, ``group``, ``n_params``, ``n_tokens``, ``loss``,
        ``residual`` (log loss minus the point fit), ``robust_z`` and, with a posterior,
        ``ppc_p`` and ``pareto_k``; ``flagged`` marks outliers.
    """

    findings: list[Finding]
    runs: pd.DataFrame = field(repr=False)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> list[Finding]:
        """The findings whose pattern was detected."""
        return [f for f in self.findings if f["severity"] == "warning"]

    def flagged(self, code: str) -> bool:
        """True when the check ``code`` found its pattern."""
        return any(f["code"] == code and f["severity"] == "warning" for f in self.findings)

    def get(self, code: str) -> Finding:
        """The finding of check ``code``."""
        for f in self.findings:
            if f["code"] == code:
                return f
        raise QueryError(f"no finding {code!r}; have {', '.join(f['code'] for f in self.findings)}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (NaN as ``None``, inf as ``"inf"``)."""
        cols = [c for c in self.runs.columns if c != "group_index"]
        return jsonable({"findings": self.findings, "meta": dict(self.meta),
                          "flagged_runs": self.runs.loc[self.runs["flagged"], cols]
                          .to_dict("records")})

    def to_text(self) -> str:
        """One line per finding, warnings first: ``WARNING code: message``."""
        order = sorted(self.findings, key=lambda f: f["severity"] != "warning")
        return "\n".join(f"{f['severity'].upper():7} {f['code']}: {f['message']}" for f in order)


def finding(code: str, flagged: bool, value: Any, threshold: Any, rule: str, message: str,
            **detail: Any) -> Finding:
    """One finding dict (severity ``warning`` when ``flagged``)."""
    return {"code": code, "severity": "warning" if flagged else "info",
            "value": None if value is None else float(value),
            "threshold": None if threshold is None else float(threshold), "rule": rule,
            "message": message, "detail": detail}


# ------------------------------------------------------------------------------ detectors
def check_outliers(fits: Mapping[str, PointFit], runs: RunTable) -> tuple[Finding, np.ndarray]:
    """Robust z of every run; returns the finding and the per-run z (in ``runs`` order)."""
    z = np.zeros(runs.n_runs)
    for g, pf in fits.items():
        sel = runs.group_index == runs.group_names.index(g)
        z[sel] = (pf.resid - np.median(pf.resid)) / pf.scale
    bad = np.flatnonzero(np.abs(z) > OUTLIER_Z)
    worst = float(np.max(np.abs(z))) if z.size else 0.0
    ids = [runs.run_ids[i] for i in bad]
    if bad.size:
        listed = ", ".join(f"{runs.run_ids[i]} ({z[i]:+.1f})" for i in bad[:5])
        msg = (f"{bad.size} run(s) lie more than {OUTLIER_Z:g} robust sd from the law: {listed}"
               f"{' ...' if bad.size > 5 else ''}; diverged or not trained to convergence? "
               f"They are left out of the other checks{ROBUST_ADVICE}")
    else:
        msg = (f"no run lies more than {OUTLIER_Z:g} robust sd from the law "
               f"(largest {worst:.1f})")
    return finding("outliers", bad.size > 0, worst, OUTLIER_Z, "value > threshold", msg,
                   runs=ids), z


def check_identifiability(fits: Mapping[str, PointFit],
                          runs: RunTable) -> tuple[Finding, Finding]:
    """Distinct model sizes per group, and the relative standard error of each exponent."""
    law = next(iter(fits.values())).law
    sizes, rel = {}, {}
    for g, pf in fits.items():
        sub = runs.subset(runs.group_index == runs.group_names.index(g))
        sizes[g] = int(levels(sub.n).max() + 1)
        rel[g] = {p: pf.se(p) / max(abs(pf.theta[p]), 1e-12) for p in law.exponents}
    g_few = min(sizes, key=sizes.get)
    few = sizes[g_few] < MIN_SIZES if "n" in law.inputs else False
    msg = (f"only {sizes[g_few]} distinct model size(s) in group {g_few!r} (< {MIN_SIZES}): "
           "the N exponent and E are not separately identified; add sizes, or read the "
           "exponents' bands as prior-driven" if few else
           f"{sizes[g_few]} or more distinct model sizes in every group (>= {MIN_SIZES})")
    f1 = finding("few_sizes", few, sizes[g_few], MIN_SIZES, "value < threshold", msg,
                 sizes=sizes)
    worst_g, worst_p = max(((g, p) for g in rel for p in rel[g]), key=lambda k: rel[k[0]][k[1]])
    v = rel[worst_g][worst_p]
    weak = bool(v > MAX_REL_SE)
    th = fits[worst_g].theta[worst_p]
    msg = (f"{worst_p} = {th:.3g} has a standard error of {v:.0%} of its value (group "
           f"{worst_g!r}; > {MAX_REL_SE:.0%}): the runs do not pin the exponents"
           if weak else f"every exponent is pinned to within {v:.0%} (standard error / value)")
    return f1, finding("exponent_uncertainty", weak, v, MAX_REL_SE, "value > threshold", msg,
                       rel_se=rel)


def bottom_block(runs: RunTable) -> np.ndarray | None:
    """Mask of the smallest size levels used by the cold-start check (None: too few sizes)."""
    lv = levels(runs.n)
    n_levels = int(lv.max() + 1)
    if n_levels < MIN_SIZES + 1:
        return None
    need = max(3, math.ceil(COLD_START_FRACTION * runs.n_runs))
    for k in range(1, n_levels // 3 + 1):
        if (lv < k).sum() >= need:
            return lv < k
    return lv < max(1, n_levels // 3)


def _cold_start_group(sub: RunTable, pf: PointFit) -> dict[str, float] | None:
    block = bottom_block(sub)
    if block is None:
        return None
    rest = point_fit(sub.subset(~block), pf.law.name, x0=pf.theta)
    low = sub.subset(block)
    mu, var_mean = rest.mean_prediction(log_inputs_of(low, pf.law))
    r = low.log_loss - mu
    z = float(r.mean() / math.sqrt(rest.scale**2 / r.size + var_mean))
    return {"z": z, "excess": float(r.mean()), "n_runs": int(r.size),
            "max_n": float(low.n.max())}


def check_cold_start(fits: Mapping[str, PointFit], runs: RunTable) -> tuple[Finding, set[str]]:
    """Do the smallest runs sit above the law fitted to the others? Returns flagged groups."""
    res = {}
    for g, pf in fits.items():
        out = _cold_start_group(runs.subset(runs.group_index == runs.group_names.index(g)), pf)
        if out is not None:
            res[g] = out
    if not res:
        return finding("cold_start", False, None, COLD_START_Z, "value > threshold",
                       f"not checked: needs at least {MIN_SIZES + 1} distinct sizes"), set()
    hit = {g for g, o in res.items()
           if o["z"] > COLD_START_Z and o["excess"] > COLD_START_MIN_EXCESS}
    g = max(res, key=lambda k: res[k]["z"])
    o = res[g]
    where = f" (group {g!r})" if len(fits) > 1 else ""
    msg = (f"the {o['n_runs']} smallest runs (N <= {o['max_n']:.3g}){where} sit "
           f"{o['excess']:+.1%} above the law fitted to the larger ones (z = {o['z']:.1f} > "
           f"{COLD_START_Z:g}): a cold start; the law's slope in N is set by sizes it does not "
           "describe -- consider dropping them" if hit else
           f"the smallest runs sit where the law of the larger ones puts them (excess "
           f"{o['excess']:+.1%}, z = {o['z']:.1f}; a cold start needs z > {COLD_START_Z:g} and "
           f"an excess above {COLD_START_MIN_EXCESS:.1%})")
    return finding("cold_start", bool(hit), o["z"], COLD_START_Z,
                   f"value > threshold and excess > {COLD_START_MIN_EXCESS:g}", msg,
                   groups=res), hit


def broken_init_grid(theta: Mapping[str, float], log_n: np.ndarray) -> dict[str, tuple]:
    """Starts for the broken law around a Chinchilla fit: break inside the ladder, any slope."""
    grid: dict[str, tuple] = {p: (float(theta[p]),) for p in LAWS["chinchilla"].params}
    grid["log_n_b"] = tuple(float(v) for v in np.quantile(log_n, (0.2, 0.35, 0.5, 0.65, 0.8)))
    grid["alpha_2"] = (0.05, 0.15, 0.25, 0.4, 0.6, 0.9)
    return grid


def _bend_group(sub: RunTable, plain: PointFit) -> dict[str, float] | None:
    if levels(sub.n).max() + 1 < MIN_SIZES:
        return None
    broken = point_fit(sub, "chinchilla_broken", scale=plain.scale,
                       init_grid=broken_init_grid(plain.theta, sub.log_n))
    t = dispersion_statistic(plain.resid, broken.resid, plain.scale)
    gain = 1.0 - np.abs(broken.resid).mean() / max(np.abs(plain.resid).mean(), 1e-12)
    th = broken.theta
    return {"t": t, "gain": float(gain), "n_b": float(np.exp(th["log_n_b"])),
            "alpha": th["alpha"], "alpha_2": th["alpha_2"]}


def check_bend(plain: Mapping[str, PointFit], runs: RunTable,
               skip_bottom: set[str] = frozenset()) -> Finding:
    """Does a smoothly broken power law in N fit much better than Chinchilla's law?

    ``plain``: Chinchilla point fits per group; groups in ``skip_bottom`` (a cold start was
    found) are tested without their bottom block, so a cold start alone does not read as a bend.
    """
    res = {}
    for g, pf in plain.items():
        sub = runs.subset(runs.group_index == runs.group_names.index(g))
        if g in skip_bottom and (block := bottom_block(sub)) is not None:
            sub = sub.subset(~block)
            pf = point_fit(sub, "chinchilla", x0=pf.theta)
        out = _bend_group(sub, pf)
        if out is not None:
            res[g] = out
    if not res:
        return finding("bend", False, None, BEND_T, "value > threshold",
                       f"not checked: needs at least {MIN_SIZES} distinct sizes")
    hit = {g for g, o in res.items() if o["t"] > BEND_T and o["gain"] >= BEND_MIN_GAIN}
    g = max(res, key=lambda k: res[k]["t"])
    o = res[g]
    where = f" in group {g!r}" if len(plain) > 1 else ""
    kind = "flattens" if o["alpha_2"] < o["alpha"] else "steepens"
    msg = (f"a broken power law fits much better{where} (T = {o['t']:.1f} > {BEND_T:g}; mean "
           f"abs residual {o['gain']:.0%} smaller): the N slope {kind} from {o['alpha']:.2f} to "
           f"{o['alpha_2']:.2f} near N = {o['n_b']:.3g}; extrapolations past it follow the new "
           "slope -- compare the 'broken' model by LOO (diagnose --full)" if hit else
           "no bend: a broken power law does not fit much better ("
           + (f"T = {o['t']:.1f} <= {BEND_T:g}" if o["t"] <= BEND_T else
              f"T = {o['t']:.1f}, but the mean abs residual is only {o['gain']:.0%} smaller "
              f"(< {BEND_MIN_GAIN:.0%})") + ")")
    return finding("bend", bool(hit), o["t"], BEND_T,
                   f"value > threshold and gain >= {BEND_MIN_GAIN:g}", msg, groups=res)


def _shared_exponent_fit(runs: RunTable, fits: Mapping[str, PointFit],
                         scale: float) -> np.ndarray:
    """Residuals of the law with exponents shared by all groups and constants per group."""
    law = next(iter(fits.values())).law
    x = log_inputs_of(runs, law)
    centre = {i: float(np.mean(x[i])) for i in law.inputs}
    x_c = _centred_inputs(law, x, centre)
    expo, consts = list(law.exponents), list(law.group_params)
    names = list(runs.group_names)
    start_c = {g: law.centre(pf.theta, centre) for g, pf in fits.items()}
    v0 = [float(np.median([pf.theta[p] for pf in fits.values()])) for p in expo]
    v0 += [float(start_c[g][p]) for g in names for p in consts]
    gi = runs.group_index

    def resid(v: np.ndarray) -> np.ndarray:
        th = {p: v[i] for i, p in enumerate(expo)}
        per = v[len(expo):].reshape(len(names), len(consts))
        th.update({p: per[gi, j] for j, p in enumerate(consts)})
        return runs.log_loss - np.asarray(law.evaluate_log(x_c, th), dtype=float)

    lo = [EXPONENT_BOUNDS[0]] * len(expo) + [-np.inf] * (len(v0) - len(expo))
    hi = [EXPONENT_BOUNDS[1]] * len(expo) + [np.inf] * (len(v0) - len(expo))
    v0 = np.clip(v0, lo, hi)
    sol = optimize.least_squares(resid, v0, loss="huber", f_scale=HUBER_K * scale,
                                 bounds=(lo, hi), method="trf", x_scale="jac")
    return resid(sol.x)


def check_slopes(fits: Mapping[str, PointFit], runs: RunTable) -> Finding:
    """Do the groups' exponents differ? Shared exponents vs separate fits per group."""
    law = next(iter(fits.values())).law
    if len(fits) < 2:
        return finding("slope_differs", False, None, None, "value > threshold",
                       "not checked: one group")
    counts = np.bincount(runs.group_index, minlength=runs.n_groups)
    scale = float(np.sqrt(sum(counts[runs.group_names.index(g)] * pf.scale**2
                              for g, pf in fits.items()) / counts.sum()))
    sep = np.empty(runs.n_runs)
    fits = dict(fits)
    for g, pf in list(fits.items()):
        sel = runs.group_index == runs.group_names.index(g)
        fits[g] = point_fit(runs.subset(sel), law.name, x0=pf.theta, scale=scale)
        sep[sel] = fits[g].resid
    shared = _shared_exponent_fit(runs, fits, scale)
    df = len(law.exponents) * (len(fits) - 1)
    t = dispersion_statistic(shared, sep, scale)
    thr = float(stats.chi2.ppf(1 - SLOPE_LEVEL, df))
    gain = 1.0 - np.abs(sep).mean() / max(np.abs(shared).mean(), 1e-12)
    est = {g: {p: {"value": pf.theta[p], "se": pf.se(p)} for p in law.exponents}
           for g, pf in fits.items()}
    hit = bool(t > thr and gain >= SLOPE_MIN_GAIN)
    spread = "; ".join(f"{p}: " + ", ".join(f"{g} {est[g][p]['value']:.3f}±{est[g][p]['se']:.3f}"
                                             for g in est) for p in law.exponents)
    msg = (f"the groups' exponents differ (T = {t:.1f} > {thr:.1f}, chi2 {df} df at "
           f"{SLOPE_LEVEL:g}; separate exponents cut the mean abs residual by {gain:.0%}): "
           f"{spread}; the shared-exponent model ('offset, not slope') does not hold -- "
           "compare the pooled-exponent model by LOO (diagnose --full)" if hit else
           f"one set of exponents fits every group (T = {t:.1f} <= {thr:.1f} or gain "
           f"{gain:.0%} < {SLOPE_MIN_GAIN:.0%}): {spread}")
    return finding("slope_differs", hit, t, thr,
                   f"value > threshold and gain >= {SLOPE_MIN_GAIN:g}", msg, estimates=est,
                   gain=float(gain), df=df)


# ------------------------------------------------------------------------------ all together
def group_fits(runs: RunTable, law_name: str, *,
               x0: Mapping[str, PointFit] | None = None) -> dict[str, PointFit]:
    """A point fit per group (warm-started from ``x0``'s fits when given).

    With several groups each group is also started from the others' fits, and the best
    optimum is kept: a grid start alone can stall at a kink of the Huber objective.
    """
    out: dict[str, PointFit] = {}
    for _ in range(2 if runs.n_groups > 1 else 1):
        first = out or x0 or {}
        for k, g in enumerate(runs.group_names):
            sub = runs.subset(runs.group_index == k)
            others = [f.theta for h, f in first.items() if h != g]
            start = first[g].theta if g in first else None
            try:
                out[g] = point_fit(sub, law_name, x0=start, extra_starts=others)
            except BayesScalingError as exc:
                raise QueryError(f"group {g!r} ({sub.n_runs} runs): cannot fit {law_name} "
                                 f"({exc})") from None
    return out


def diagnose_runs(runs: RunTable, law: str = "chinchilla", *,
                  fits: Mapping[str, PointFit] | None = None) -> DiagnosisResult:
    """The cheap detectors on a run table, from Huber point fits of ``law`` (no sampling).

    Outliers are found first and left out of the other checks. The bend check always compares
    Chinchilla's law with its broken form (it needs both N and D); the cold-start check needs N.
    """
    if law not in LAWS:
        raise QueryError(f"diagnostics work on L(N, D) laws ({', '.join(LAWS)}), not {law!r}")
    spec_law = LAWS[law]
    fits = dict(fits) if fits is not None else group_fits(runs, law)
    f_out, z = check_outliers(fits, runs)
    keep = np.abs(z) <= OUTLIER_Z
    clean = runs if keep.all() else runs.subset(keep)
    if not keep.all():
        fits = group_fits(clean, law, x0=fits)
    findings = [f_out, *check_identifiability(fits, clean)]
    cold: set[str] = set()
    if "n" in spec_law.inputs:
        f_cold, cold = check_cold_start(fits, clean)
        findings.append(f_cold)
    if {"n", "d"} <= set(spec_law.inputs):
        plain = fits if law == "chinchilla" else group_fits(clean, "chinchilla")
        findings.append(check_bend(plain, clean, skip_bottom=cold))
    findings.append(check_slopes(fits, clean))
    table = pd.DataFrame({"run_id": list(runs.run_ids),
                          "group": [runs.group_names[i] for i in runs.group_index],
                          "n_params": runs.n, "n_tokens": runs.d, "loss": runs.loss,
                          "residual": _residuals_in_order(fits, runs), "robust_z": z,
                          "flagged": ~keep})
    return DiagnosisResult(findings, table, {"law": law, "n_runs": runs.n_runs,
                                             "n_groups": runs.n_groups})


def _residuals_in_order(fits: Mapping[str, PointFit], runs: RunTable) -> np.ndarray:
    """Log-loss residual of every run (outliers included) from its group's point fit."""
    out = np.empty(runs.n_runs)
    for g, pf in fits.items():
        sel = runs.group_index == runs.group_names.index(g)
        sub = runs.subset(sel)
        x = log_inputs_of(sub, pf.law)
        out[sel] = sub.log_loss - np.asarray(pf.law.evaluate_log(x, pf.theta), dtype=float)
    return out
