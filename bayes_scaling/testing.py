"""Helpers for tests and benchmarks: synthetic ladders with known truth and fake fits (no NUTS).

``synthetic_runs`` draws a ladder from a law with chosen constants (and per-group offsets);
``fake_fit`` builds a :class:`~bayes_scaling.fitting.fit.ScalingFit` whose posterior is a tight
cloud
around given constants, so query code can be tested without sampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling.constants import CHAIN, DRAW, GROUP
from bayes_scaling.data.curves import CurveTable, load_curves
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.laws.curve import DYNAMICS, log_loss_nsb
from bayes_scaling.laws.final_loss import LAWS
from bayes_scaling.model.gate import Diagnostics
from bayes_scaling.model.spec import load_spec


def to_sampling(law_name: str, params: Mapping[str, float]) -> dict[str, float]:
    """``{e: 1.69, a: 406.4, ...}`` -> ``{log_e: ..., log_a: ..., alpha: ...}`` for ``law``."""
    out = {}
    for p in LAWS[law_name].params:
        if p in params:
            out[p] = float(params[p])
        elif p.startswith("log_") and p[4:] in params:
            out[p] = float(np.log(params[p[4:]]))
        else:
            raise KeyError(f"missing constant {p} for law {law_name}")
    return out


def synthetic_runs(
    law_name: str,
    params: Mapping[str, float],
    *,
    n_sizes: Sequence[float] = tuple(np.geomspace(1e7, 3e9, 8)),
    tokens_per_param: Sequence[float] = (5, 10, 20, 40, 80),
    noise: float = 0.01,
    group_offsets: Mapping[str, Mapping[str, float]] | None = None,
    nu: float | None = None,
    seed: int = 0,
) -> RunTable:
    """A ladder of runs drawn from ``law_name`` with ``params`` (natural or log scale).

    Each size is trained at each tokens-per-parameter ratio; log loss gets Normal noise of sd
    ``noise`` (Student-t with ``nu`` degrees of freedom when given). ``group_offsets`` maps a
    group name to additive offsets on log-scale constants (e.g. ``{"b": {"log_e": 0.05}}``).
    """
    rng = np.random.default_rng(seed)
    law = LAWS[law_name]
    base = to_sampling(law_name, params)
    groups = group_offsets or {"all": {}}
    frames = []
    for g, offs in groups.items():
        theta = {p: base[p] + offs.get(p, 0.0) for p in law.params}
        n = np.repeat(np.asarray(n_sizes, float), len(tokens_per_param))
        d = n * np.tile(np.asarray(tokens_per_param, float), len(n_sizes))
        mu = law.evaluate_log({"n": np.log(n), "d": np.log(d)}, theta)
        eps = rng.standard_t(nu, n.size) if nu else rng.standard_normal(n.size)
        frames.append(pd.DataFrame({"group": g, "n_params": n, "n_tokens": d,
                                    "loss": np.exp(mu + noise * eps)}))
    frame = pd.concat(frames, ignore_index=True)
    return load_runs(frame, group_col="group" if group_offsets else None)


def fake_fit(
    model: str,
    params: Mapping[str, float],
    *,
    runs: RunTable | None = None,
    groups: Sequence[str] = ("all",),
    spread: float = 1e-3,
    sigma: float = 0.01,
    chains: int = 2,
    draws: int = 500,
    seed: int = 0,
    extra: Mapping[str, float] | None = None,
    group_offsets: Mapping[str, Mapping[str, float]] | None = None,
) -> ScalingFit:
    """A fit whose posterior is Normal(params, spread) per constant: for testing queries.

    ``extra`` adds constant posterior variables (e.g. ``{"kappa": 0.03, "tau0": 0.01}``);
    ``group_offsets`` shifts a group's varying constants (``{"b": {"log_e": -0.02}}``, the
    spelling of :func:`synthetic_runs`).
    """
    spec = load_spec(model)
    law = LAWS[spec.law]
    rng = np.random.default_rng(seed)
    theta = to_sampling(spec.law, params)
    if runs is None:
        runs = synthetic_runs(spec.law, params, seed=seed, group_offsets=(
            {g: {} for g in groups} if len(groups) > 1 else None))
    shape = (chains, draws)
    post: dict[str, Any] = {}
    multi = runs.n_groups > 1
    for p in law.params:
        if multi and p in spec.hierarchy.varying:
            shift = [(group_offsets or {}).get(g, {}).get(p, 0.0) for g in runs.group_names]
            vals = theta[p] + np.asarray(shift) + spread * rng.standard_normal(
                (*shape, runs.n_groups))
            post[p] = xr.DataArray(vals, dims=(CHAIN, DRAW, GROUP),
                                   coords={GROUP: list(runs.group_names)})
            post[f"{p}_pop"] = xr.DataArray(vals.mean(axis=-1), dims=(CHAIN, DRAW))
            post[f"{p}_tau"] = xr.DataArray(np.full(shape, 0.05), dims=(CHAIN, DRAW))
        else:
            post[p] = xr.DataArray(theta[p] + spread * rng.standard_normal(shape),
                                   dims=(CHAIN, DRAW))
    post["sigma"] = xr.DataArray(np.full(shape, sigma), dims=(CHAIN, DRAW))
    if spec.likelihood.family == "studentt":
        post["nu"] = xr.DataArray(np.full(shape, 30.0), dims=(CHAIN, DRAW))
    for k, v in (extra or {}).items():
        post[k] = xr.DataArray(np.full(shape, float(v)), dims=(CHAIN, DRAW))
    diag = Diagnostics(max_rhat=1.0, min_ess_bulk=1000.0, min_ess_tail=1000.0, divergences=0,
                       chains=chains, draws=draws, backend="fake", seed=seed,
                       sampling_seconds=0.0)
    idata = az.InferenceData(posterior=xr.Dataset(post))
    return ScalingFit(idata, spec, runs, diag, {"method": "fake", "seed": seed})


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
