"""The convergence gate: r-hat, bulk/tail ESS and divergences, checked after every fit.

A fit that fails the gate is not hidden: :func:`check_convergence` raises
:class:`~bayes_scaling.errors.ConvergenceError` or, when the caller opts into ``"warn"``, emits a
:class:`~bayes_scaling.errors.ConvergenceWarning`; the fit keeps the flag and every output that
uses it (summaries, CLI, reports) prints :meth:`Diagnostics.banner`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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


def check_convergence(diag: Diagnostics, *, on_bad: Literal["raise", "warn"] = "warn") -> None:
    """Raise or warn when ``diag`` failed the gate; silent when it passed."""
    if diag.passed:
        return
    if on_bad == "raise":
        raise ConvergenceError(diag.banner())
    warnings.warn(diag.banner(), ConvergenceWarning, stacklevel=2)
