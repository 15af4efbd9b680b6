"""Rank every group of one fit at target budgets: each rank's probability, pairwise P(better).

Draw by draw on the joint posterior (numpy only): each group's loss at the target (its law's
mean, or one real run of it with ``band="predictive"``), the groups ranked by it (1 = lowest
loss), and the share of draws giving each group each rank. See
:mod:`bayes_scaling.query.contrast` for targets, paths and the comparability check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CHAIN, DRAW, GROUP, POINT
from bayes_scaling.errors import QueryError
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query.contrast import (
    DiscrepancyMode,
    check_comparable,
    make_targets,
    path_split,
    predictive_draws,
    seen_groups,
)
from bayes_scaling.query.predict import _emit, group_theta, require_nd_law
from bayes_scaling.query.summarize import BANDS, jsonable
from bayes_scaling.types import Band, OnBad, SeedLike


@dataclass(frozen=True)
class Ranking:
    """Result of :func:`rank_groups`.

    Attributes
    ----------
    ranks
        One row per (target, group), best expected rank first: ``flops``, ``group``,
        ``expected_rank``, ``median_loss``, ``p_rank_1`` ... ``p_rank_K``.
    pairwise
        One row per (target, group, other): ``p_better``, the probability that ``group`` has
        the lower loss.
    draws
        Loss per draw, dims ``chain, draw, point, group``.
    """

    groups: tuple[str, ...]
    band: str
    ranks: pd.DataFrame
    pairwise: pd.DataFrame
    draws: xr.DataArray
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def pairwise_matrix(self, flops: float | None = None) -> pd.DataFrame:
        """``P(row better than column)`` at one target (the first by default)."""
        pw = self.pairwise
        c = pw["flops"].iloc[0] if flops is None else flops
        sel = pw[np.isclose(pw["flops"], c)]
        return sel.pivot(index="group", columns="other", values="p_better") \
            .reindex(index=list(self.groups), columns=list(self.groups))

    def to_records(self) -> dict[str, Any]:
        """JSON-ready form."""
        return jsonable({"band": self.band, "groups": list(self.groups),
                         "ranks": self.ranks.to_dict(orient="records"),
                         "pairwise": self.pairwise.to_dict(orient="records"),
                         "warnings": list(self.warnings)})


def rank_groups(
    fit: ScalingFit,
    *,
    flops: Any = None,
    n_params: Any = None,
    n_tokens: Any = None,
    tokens_per_param: float | None = None,
    groups: Sequence[str] | None = None,
    band: Band = "law",
    discrepancy: DiscrepancyMode = "anchored",
    on_mixed: OnBad = "raise",
    random_seed: SeedLike = None,
) -> Ranking:
    """Rank groups by their loss at target budgets, with rank probabilities.

    Parameters
    ----------
    fit : ScalingFit
        A fit with several groups.
    flops, n_params, n_tokens, tokens_per_param
        The targets (see :func:`bayes_scaling.query.contrast.make_targets`).
    groups : sequence of str, optional
        The groups to rank (default: every group of the fit).
    band : {"law", "predictive"}
        Rank the laws' means, or one real run of each group.
    discrepancy : {"anchored", "shared", "independent"}
        With ``band="predictive"``: anchored on each group's observed level nearest the target
        (the default), or the law's extrapolation discrepancy shared by the groups or not (see
        :data:`bayes_scaling.query.contrast.DiscrepancyMode`).
    on_mixed : {"raise", "warn"}
        Groups evaluated on different evaluation sets: refuse, or warn.
    random_seed
        Seed of the predictive draws.

    Returns
    -------
    Ranking
    """
    require_nd_law(fit)
    if band not in BANDS:
        raise QueryError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    names = seen_groups(fit, tuple(groups) if groups is not None else fit.group_names)
    notes = list(check_comparable(fit, names, on_mixed=on_mixed))
    tg = make_targets(flops, n_params, n_tokens, tokens_per_param)
    rng = np.random.default_rng(random_seed)
    law = fit.law
    logs, splits, thetas = [], [], {}
    for g in names:
        th = thetas[g] = {k: v[:, None] for k, v in group_theta(fit, g).items()}
        sp = path_split(law, th, tg.log_c, tg.log_ratio)
        s = max(np.shape(v)[0] for v in th.values())
        logs.append(np.broadcast_to(law.evaluate_log({"n": sp[0], "d": sp[1]}, th),
                                    (s, tg.flops.size)))
        splits.append(sp)
    if band == "predictive":
        logs, _, more = predictive_draws(fit, names, thetas, logs, splits, tg,
                                         discrepancy=discrepancy, rng=rng)
        notes += more
    loss = np.exp(np.stack(logs, axis=-1))  # (S, points, groups)
    ranks_of, pairwise = rank_tables(loss, names, tg.flops)
    notes += _emit([], fit)
    c, d = fit.posterior.sizes[CHAIN], fit.posterior.sizes[DRAW]
    draws = xr.DataArray(loss.reshape(c, d, *loss.shape[1:]), dims=(CHAIN, DRAW, POINT, GROUP),
                         coords={POINT: tg.flops, GROUP: list(names)}, name="loss",
                         attrs={"band": band, "units": "nats/token"})
    return Ranking(names, band, ranks_of, pairwise, draws, tuple(notes))


def rank_tables(loss: np.ndarray, names: Sequence[str],
                flops: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank and pairwise tables from loss draws of shape ``(S, points, groups)``."""
    k = len(names)
    order = np.argsort(np.argsort(loss, axis=-1), axis=-1) + 1  # rank of each group per draw
    rank_rows, pair_rows = [], []
    for j, c in enumerate(flops):
        rows = []
        for i, g in enumerate(names):
            row = {"flops": c, "group": g, "expected_rank": float(order[:, j, i].mean()),
                   "median_loss": float(np.median(loss[:, j, i]))}
            for r in range(1, k + 1):
                row[f"p_rank_{r}"] = float((order[:, j, i] == r).mean())
            rows.append(row)
            for o, h in enumerate(names):
                if o != i:
                    pair_rows.append({"flops": c, "group": g, "other": h,
                                      "p_better": float((loss[:, j, i] < loss[:, j, o]).mean())})
        rank_rows += sorted(rows, key=lambda r: r["expected_rank"])
    return pd.DataFrame(rank_rows), pd.DataFrame(pair_rows)
