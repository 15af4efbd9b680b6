"""PSIS-LOO of a fit (ArviZ): the pointwise log likelihood rebuilt from the posterior with numpy,
``az.loo`` on it, and the table comparing families (a diagnostic of interpolation, not of
extrapolation)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from bayes_scaling.constants import CHAIN, DRAW, RUN
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.predict import flat, group_theta


# ------------------------------------------------------------------------------ LOO
def pointwise_log_likelihood(fit_: ScalingFit) -> xr.DataArray:
    """``log p(log L_i | theta_s)`` per draw and run: dims ``(chain, draw, run)``.

    The law's log mean for the run's group plus the fit's likelihood (Normal, or Student-t with
    the posterior ``nu``) with scale ``sigma``: the density of the observed *log* loss.
    """
    post, runs = fit_.posterior, fit_.runs
    s = post.sizes[CHAIN] * post.sizes[DRAW]
    out = np.empty((s, runs.n_runs))
    sigma = flat(post["sigma"])[:, None]
    nu = flat(post["nu"])[:, None] if "nu" in post else None
    for g, name in enumerate(runs.group_names):
        sel = runs.group_index == g
        if not sel.any():
            continue
        theta = {k: v[:, None] for k, v in group_theta(fit_, name).items()}
        mu = fit_.law.evaluate_log({"n": runs.log_n[sel][None, :],
                                    "d": runs.log_d[sel][None, :]}, theta)
        y = runs.log_loss[sel][None, :]
        out[:, sel] = (stats.t.logpdf(y, df=nu, loc=mu, scale=sigma) if nu is not None
                       else stats.norm.logpdf(y, loc=mu, scale=sigma))
    arr = out.reshape(post.sizes[CHAIN], post.sizes[DRAW], runs.n_runs)
    return xr.DataArray(arr, dims=(CHAIN, DRAW, RUN), coords={RUN: list(runs.run_ids)},
                        name="log_loss")


def with_log_likelihood(fit_: ScalingFit) -> az.InferenceData:
    """The fit's InferenceData plus a ``log_likelihood`` group (variable ``log_loss``)."""
    ll = pointwise_log_likelihood(fit_).to_dataset()
    return az.InferenceData(posterior=fit_.posterior, log_likelihood=ll)


def loo(fit_: ScalingFit) -> Any:
    """PSIS-LOO of a fit (ArviZ ``ELPDData``, pointwise); Pareto-k warnings are kept in it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reported via n_bad_pareto_k and notes
        return az.loo(with_log_likelihood(fit_), pointwise=True, var_name="log_loss")


def n_bad_pareto_k(elpd: Any) -> int:
    """Runs whose Pareto k exceeds ArviZ's threshold (``min(1 - 1/log10 S, 0.7)``)."""
    good = float(getattr(elpd, "good_k", 0.7))
    return int(np.sum(np.asarray(elpd.pareto_k) > good))


def loo_table(loos: Mapping[str, Any]) -> pd.DataFrame:
    """``az.compare`` (stacking) of precomputed LOOs: one row per model, best first."""
    if len(loos) == 1:
        (name, e), = loos.items()
        return pd.DataFrame([{"model": name, "elpd_loo": float(e["elpd_loo"]),
                              "se": float(e["se"]), "elpd_diff": 0.0, "dse": 0.0,
                              "weight": 1.0, "p_loo": float(e["p_loo"])}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # ArviZ 0.2x's own use of pandas, deprecated in pandas 3; not ours to fix
        warnings.simplefilter("ignore", getattr(pd.errors, "Pandas4Warning", FutureWarning))
        cmp = az.compare(dict(loos), ic="loo", method="stacking", scale="log")
    cmp = cmp.rename_axis("model").reset_index()
    return cmp[["model", "elpd_loo", "se", "elpd_diff", "dse", "weight", "p_loo"]].astype(
        {"elpd_loo": float, "se": float, "elpd_diff": float, "dse": float, "weight": float,
         "p_loo": float})
