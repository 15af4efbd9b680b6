"""The convergence gate: r-hat, bulk/tail ESS and divergences, checked after every fit.

A fit that fails the gate is not hidden: :func:`check_convergence` raises
:class:`~bayes_scaling.errors.ConvergenceError` or, when the caller opts into ``"warn"``, emits a
:class:`~bayes_scaling.errors.ConvergenceWarning`; the fit keeps the flag and every output that
uses it (summaries, CLI, reports) prints :meth:`Diagnostics.banner`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import arviz as az
import numpy as np

from bayes_scaling.constants import MAX_DIVERGENCES, MAX_RHAT, MIN_ESS
from bayes_scaling.errors import ConvergenceError, ConvergenceWarning


@dataclass(frozen=True)
class Gate:
    """Thresholds of the convergence gate."""

    max_rhat: float = MAX_RHAT
    min_ess_bulk: float = MIN_ESS
    min_ess_tail: float = MIN_ESS
    max_divergences: int = MAX_DIVERGENCES


@dataclass(frozen=True)
class Diagnostics:
    """What the sampler and ArviZ say about a posterior, and whether it passed the gate."""

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws: int
    backend: str
    seed: int | None
    sampling_seconds: float
    problems: tuple[str, ...] = field(default_factory=tuple)
    worst_param: str = ""

    @property
    def passed(self) -> bool:
        """True when the posterior passed every check of the gate."""
        return not self.problems

    @property
    def mixing_failed(self) -> bool:
        """True when r-hat or an ESS failed the gate (more draws help; divergences need
        smaller steps)."""
        return any(not p.endswith("divergent transitions") for p in self.problems)

    def banner(self) -> str:
        """One line for every output that uses this fit ("" when it passed)."""
        if self.passed:
            return ""
        return ("WARNING: posterior failed the convergence gate: " + "; ".join(self.problems)
                + " - do not trust these numbers (raise --tune/--draws or target_accept)")

    def to_attrs(self) -> dict[str, str]:
        """Flat attributes for a netCDF file."""
        return {"diagnostics_json": json.dumps(asdict(self))}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Diagnostics:
        """Inverse of :meth:`to_attrs`."""
        raw = json.loads(attrs["diagnostics_json"])
        raw["problems"] = tuple(raw.get("problems", ()))
        return cls(**raw)


def convergence_diagnostics(idata: az.InferenceData, var_names: Sequence[str], *, backend: str,
             seed: int | None, sampling_seconds: float, gate: Gate | None = None) -> Diagnostics:
    """Compute r-hat, ESS and divergences for ``var_names`` and judge them against ``gate``."""
    gate = gate or Gate()
    post = idata.posterior[list(var_names)]
    rhat = az.rhat(post)
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")

    def extreme(ds, fn):
        vals = {k: float(fn(np.asarray(v))) for k, v in ds.data_vars.items()}
        key = (max if fn is np.nanmax else min)(vals, key=vals.get)
        return vals[key], key

    max_rhat, worst = extreme(rhat, np.nanmax)
    min_bulk, worst_bulk = extreme(ess_bulk, np.nanmin)
    min_tail, _ = extreme(ess_tail, np.nanmin)
    div = 0
    if "sample_stats" in idata and "diverging" in idata.sample_stats:
        div = int(np.asarray(idata.sample_stats["diverging"]).sum())
    problems = [msg for bad, msg in [
        (not np.isfinite(max_rhat) or max_rhat > gate.max_rhat,
         f"max r_hat {max_rhat:.3f} > {gate.max_rhat} ({worst})"),
        (min_bulk < gate.min_ess_bulk, f"min bulk ESS {min_bulk:.0f} < {gate.min_ess_bulk:.0f}"
         f" ({worst_bulk})"),
        (min_tail < gate.min_ess_tail, f"min tail ESS {min_tail:.0f} < {gate.min_ess_tail:.0f}"),
        (div > gate.max_divergences, f"{div} divergent transitions"),
    ] if bad]
    return Diagnostics(
        max_rhat=max_rhat, min_ess_bulk=min_bulk, min_ess_tail=min_tail, divergences=div,
        chains=int(post.sizes["chain"]), draws=int(post.sizes["draw"]), backend=backend,
        seed=seed, sampling_seconds=float(sampling_seconds), problems=tuple(problems),
        worst_param=worst,
    )


def check_convergence(diag: Diagnostics, *, on_bad: Literal["raise", "warn"] = "warn") -> None:
    """Raise or warn when ``diag`` failed the gate; silent when it passed."""
    if diag.passed:
        return
    if on_bad == "raise":
        raise ConvergenceError(diag.banner())
    warnings.warn(diag.banner(), ConvergenceWarning, stacklevel=2)
