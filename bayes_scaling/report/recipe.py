"""The risk report's optional "alternative recipe" numbers: the plan trained on another group.

Included when the proposal names ``runs.alternative_group``: on the primary family's fit, the
planned (N, D) trained on that group (B) against the plan's group (A), draw by draw
(:func:`bayes_scaling.query.contrast.contrast_groups`): the compute multiplier, the loss
difference with law and predictive bands, P(alternative better) and where the laws cross.
"""

from __future__ import annotations

from typing import Any

from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.contrast import contrast_groups
from bayes_scaling.types import SeedLike

_ROWS = (("multiplier", "law"), ("difference", "law"), ("difference", "predictive"))


def recipe_entry(fit: ScalingFit, group: str, alternative: str | None, n_params: float,
                 n_tokens: float, *, random_seed: SeedLike = None) -> dict[str, Any]:
    """The planned run on ``alternative`` against ``group``, JSON-ready.

    Parameters
    ----------
    fit : ScalingFit
        The primary family's fit.
    group : str
        The plan's group (A).
    alternative : str or None
        The alternative recipe (B); ``None``: the proposal names none.
    n_params, n_tokens : float
        The planned run.
    random_seed : SeedLike
        Seed of the predictive draws.

    Returns
    -------
    dict
        ``{"named": False}`` without an alternative; ``{"named": True, "included": False,
        "reason": ...}`` when the contrast is refused (e.g. different evaluation sets); else
        ``included`` with ``group``, ``alternative``, ``model``, ``multiplier``,
        ``difference_law``, ``difference_predictive`` (each ``median``, ``lo_90``, ``hi_90``,
        ``p_b_better``), ``crossing`` (``c_min``, ``c_max``, ``p_cross``, ``median``) and
        ``warnings``.
    """
    if alternative is None:
        return {"named": False, "included": False}
    try:
        res = contrast_groups(fit, group, alternative, n_params=n_params, n_tokens=n_tokens,
                              probs=(0.9,), random_seed=random_seed)
    except QueryError as exc:
        return {"named": True, "included": False, "reason": str(exc)}
    s = res.summary.set_index(["quantity", "band"])
    out: dict[str, Any] = {"named": True, "included": True, "model": fit.spec.name,
                           "group": group, "alternative": alternative,
                           "warnings": [w for w in res.warnings if w != fit.warning_banner]}
    for q, band in _ROWS:
        r = s.loc[(q, band)]
        out[q if q == "multiplier" else f"{q}_{band}"] = {
            k: float(r[k]) for k in ("median", "lo_90", "hi_90", "p_b_better")}
    x = res.crossing.iloc[0]
    out["crossing"] = {k: float(x[k]) for k in ("c_min", "c_max", "p_cross", "median")}
    return out
