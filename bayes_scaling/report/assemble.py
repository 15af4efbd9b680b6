r"""Every number of a compute proposal's risk report, gathered into one JSON-ready dict.

:func:`build_risk` loads the proposal's runs, fits each law family (or reuses saved fits whose
spec and data hashes match; or takes the fit file the proposal names, ``models.fit``, with its
stacking weights), resolves the plan (a FLOP budget alone is split compute-optimally
by the first family) and asks every section of
:data:`~bayes_scaling.report.registry.SECTIONS` for its entries: the verdict
(:math:`P(L \le L^*)` per family and model-averaged), tokens needed, the compute-optimal
alternative, extrapolation, the backtests, convergence, priors, Kaplan vs Chinchilla, training
dynamics, pattern checks, the next run, provenance.

The dict's numbers are plain floats (``inf`` written as the string ``"inf"``); ``figures`` holds
the arrays the report's plots are drawn from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bayes_scaling.constants import FLOPS_PER_PARAM_TOKEN, NEW_GROUP
from bayes_scaling.data.runs import RunTable
from bayes_scaling.fitting.fit import seed_int
from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.model.spec import load_spec
from bayes_scaling.query.allocate import compute_optimal
from bayes_scaling.query.summarize import jsonable
from bayes_scaling.report.common import quiet
from bayes_scaling.report.context import Context, Section
from bayes_scaling.report.fits import (
    fit_settings,
    load_proposal_runs,
    obtain_fit,
    proposal_fits,
)
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.report.registry import SECTIONS
from bayes_scaling.types import ProgressFn, SeedLike


def _group(proposal: Proposal, runs: RunTable) -> str:
    """The group the proposal is predicted for (checked against the runs)."""
    g = proposal.runs.group
    if g is None:
        if runs.n_groups == 1:
            return runs.group_names[0]
        raise proposal.error("runs.group", f"is required: the runs have {runs.n_groups} groups "
                             f"({', '.join(runs.group_names)}); or 'new' for an unseen one")
    if g != NEW_GROUP and g not in runs.group_names:
        raise proposal.error("runs.group", f"names {g!r}, not a group of the runs "
                             f"({', '.join(runs.group_names)}; or 'new')")
    return g


def _plan(proposal: Proposal, fits: Mapping[str, ScalingFit], group: str,
          seed: int) -> Proposal:
    """The proposal with (N, D) set: a FLOP budget alone is split by the first family."""
    if proposal.split != "optimal":
        return proposal
    first = fits[proposal.families[0]]
    res = compute_optimal(first, proposal.flops, group=group, random_seed=seed)
    n_opt = float(res.summary.set_index("quantity").loc["n_opt", "median"])
    return proposal.with_plan(n_opt, float(proposal.flops) / (FLOPS_PER_PARAM_TOKEN * n_opt))


def _all_fits(proposal: Proposal, runs: RunTable, fits: Mapping[str, ScalingFit] | None,
              seed: int, cache: Path | None, tell: ProgressFn,
              ) -> tuple[dict[str, ScalingFit], dict[str, dict[str, Any]]]:
    """Each family's fit: given, saved in ``cache`` or fitted now (seed ``seed + i``)."""
    out, prov = {}, {}
    on_bad = "raise" if proposal.fit.strict else "warn"
    for i, fam in enumerate(proposal.families):
        if fits is not None and fam in fits:
            if fits[fam].runs.fingerprint() != runs.fingerprint():
                raise proposal.error("models.families", f"the fit given for {fam!r} was fitted "
                                     "on other runs than the proposal's (data hash differs)")
            out[fam], prov[fam] = fits[fam], {"file": None, "reused": True, "given": True}
            continue
        tell(f"[{i + 1}/{len(proposal.families)}] {fam}")
        out[fam], prov[fam] = quiet(obtain_fit, load_spec(fam), runs,
                                    settings=fit_settings(proposal), seed=seed + i,
                                    cache_dir=cache, on_bad=on_bad, tell=tell)
    return out, prov


def build_risk(
    proposal: Proposal,
    *,
    fits: Mapping[str, ScalingFit] | None = None,
    random_seed: SeedLike = None,
    on_progress: ProgressFn | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    sections: Sequence[Section] = SECTIONS,
) -> dict[str, Any]:
    """Every number (and figure array) of the risk report of ``proposal``, JSON-ready.

    Parameters
    ----------
    proposal : Proposal
        A validated :class:`~bayes_scaling.report.proposal.Proposal`.
    fits : Mapping of str to ScalingFit, optional
        Fits to use per family (keys as in ``proposal.families``); must be fitted on the
        proposal's runs. Families not given are fitted (or read from ``cache_dir``). Without
        ``fits``, a proposal naming a fit file (``models.fit``) uses that file's families and
        weights and fits nothing (:func:`~bayes_scaling.report.fits.proposal_fits`).
    random_seed : SeedLike, optional
        Seed of every random step (default: the proposal's ``seed``). The verdict's P(target)
        is ``mean(predict_loss(fit, N, D, band=..., random_seed=seed).draws <= target)``.
    on_progress : callable, optional
        Called with one line per step (fits, backtests, comparison).
    cache_dir : path, optional
        Folder of saved fits, ``<model>-<spec_hash[:12]>-<data_hash[:12]>.nc``: reused when the
        spec, data and sampler settings match, written otherwise. ``None``: no caching.
    sections : sequence of Section, default :data:`~bayes_scaling.report.registry.SECTIONS`
        The sections whose entries make up the dict.

    Returns
    -------
    dict
        Every entry of every section, in the sections' order: ``schema``, ``title``,
        ``plan``, ``warnings``, ... (header), ``verdict``, ``tokens_needed``, ``alternative``
        and ``figures``, ``extrapolation``, ``trust``, ``convergence`` and ``gate``, ``priors``
        and ``constants``, ``comparison`` and ``weights``, ``dynamics``, ``patterns``,
        ``next_run``, ``provenance``.
    """
    tell = on_progress or (lambda _m: None)
    seed = int(proposal.seed) if random_seed is None else seed_int(random_seed)
    cache = Path(cache_dir) if cache_dir is not None else None
    runs, files = load_proposal_runs(proposal)
    group = _group(proposal, runs)
    stacked = None
    if proposal.fit_file is not None and fits is None:
        tell(f"using the saved fit {proposal.fit_file} (models.fit)")
        fits_used, fit_prov, stacked = proposal_fits(proposal, runs)
        proposal = replace(proposal, families=tuple(fits_used))
    else:
        fits_used, fit_prov = _all_fits(proposal, runs, fits, seed, cache, tell)
    ctx = Context(plan=_plan(proposal, fits_used, group, seed), runs=runs, files=files,
                  group=group, fits=fits_used, fit_prov=fit_prov, seed=seed, cache=cache,
                  tell=tell, sections=sections, saved_weights=stacked)
    risk = {key: ctx.entry(key) for section in sections for key in section.keys}
    tell("risk numbers ready")
    return jsonable(risk)
