"""Several law families fitted to one ladder, with their stacking weights: :class:`FamilyFit`.

``bayes-scaling fit --model chinchilla,farseer,kaplan_e,broken`` (or
:func:`bayes_scaling.evaluate.stacking.fit_stacked`) fits each family to the same runs and
weighs them by how they extrapolate (held-out-by-compute stacking). The queries
(``predict_loss``, ``tokens_needed``, ``compute_optimal``) given a :class:`FamilyFit` answer
from the families' **weighted quantile average** (:func:`quantile_average`: at each point the
weighted mean of their quantiles on the log scale; not the linear pool of their draws, whose
band widens by their disagreement on top of each family's own band, measured too wide in
``benchmarks/results/families_combine.md``); :meth:`FamilyFit.family` gives one
family's own fit (its band stays available). Every family keeps its own convergence gate:
:attr:`FamilyFit.warning_banner` names each family that failed it, and every query shows it.

File layout (one netCDF/HDF5 file, the same checksum trailer as a single fit): a ``families``
group whose attributes hold the format version, the family names, the weights and how they were
made (JSON); ``fit_data`` (the run table, shared); and per family ``posterior.<name>`` and
``sample_stats.<name>`` written and checked exactly as a single fit's groups.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayes_scaling.constants import CHAIN, DRAW
from bayes_scaling.data.runs import RunTable
from bayes_scaling.errors import BayesScalingError, FitFileError, QueryError
from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.draws import read_groups, write_groups
from bayes_scaling.fitting.result import (
    FORMAT_VERSION,
    ScalingFit,
    append_checksum,
    package_version,
    verify_file,
    versions,
)

#: Name of the group that marks a multi-family file.
FAMILIES_GROUP = "families"


@dataclass(frozen=True)
class FamilyFit:
    """Law families fitted to the same runs, and the weights of their average.

    Attributes
    ----------
    fits
        ``{family name: ScalingFit}``, all on one run table.
    weights
        ``{family name: weight}``, non-negative, summing to 1.
    meta
        How the weights were made: ``weights_method`` (``"shrunk"``: own held-out-by-compute
        stacking shrunk toward the cross-ladder weights; ``"cross-ladder"``;
        ``"heldout-by-compute"`` in older files; ``"equal"`` or ``"given"``), ``stack_tops``,
        ``refit_method``, ``n_heldout``, ``n``, ``k``, ``own``, ``cross``, ``scores`` (the
        held-out table as records), ``created``, ``versions``.
    """

    fits: Mapping[str, ScalingFit]
    weights: Mapping[str, float]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.fits:
            raise BayesScalingError("a family fit needs at least one fit")
        if set(self.weights) != set(self.fits):
            raise BayesScalingError(f"weights name {sorted(self.weights)}, fits are "
                                    f"{sorted(self.fits)}")
        w = np.array([float(self.weights[k]) for k in self.fits])
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise BayesScalingError(f"weights must be non-negative with a positive sum, got "
                                    f"{dict(self.weights)}")
        prints = {f.runs.fingerprint() for f in self.fits.values()}
        if len(prints) > 1:
            raise BayesScalingError("the families were fitted to different run tables")
        object.__setattr__(self, "weights",
                           {k: float(v) for k, v in zip(self.fits, w / w.sum(), strict=True)})

    # ------------------------------------------------------------------ views
    @property
    def names(self) -> tuple[str, ...]:
        """The family names, in the order given."""
        return tuple(self.fits)

    @property
    def runs(self) -> RunTable:
        """The run table every family was fitted to."""
        return self.first.runs

    @property
    def first(self) -> ScalingFit:
        """The highest-weight family's fit (ties: the first)."""
        return self.fits[self.best]

    @property
    def best(self) -> str:
        """The name of the highest-weight family."""
        return max(self.fits, key=lambda k: self.weights[k])

    @property
    def group_names(self) -> tuple[str, ...]:
        """Groups (data distributions) seen in the fits."""
        return self.runs.group_names

    @property
    def method(self) -> str:
        """``"families"``."""
        return "families"

    def family(self, name: str) -> ScalingFit:
        """One family's own fit (its own band)."""
        if name not in self.fits:
            raise QueryError(f"no family {name!r} in this fit; it holds {', '.join(self.fits)}")
        return self.fits[name]

    @property
    def warning_banner(self) -> str:
        """Every family's failed gate (or weak identification), named; "" when all pass."""
        return " ".join(f"[{k}] {f.warning_banner}" for k, f in self.fits.items()
                        if f.warning_banner)

    def weights_label(self) -> str:
        """``name:weight, ...`` of the families with a positive weight."""
        return ", ".join(f"{k}:{w:.3f}" for k, w in self.weights.items() if w > 0)

    def describe(self) -> str:
        """One line per family: weight and gate, then how the weights were made."""
        how = str(self.meta.get("weights_method", "given"))
        if how in ("heldout-by-compute", "shrunk"):
            how += (f": refits without the top {self.meta.get('stack_tops')} compute budget(s), "
                    f"{self.meta.get('refit_method')}, {self.meta.get('n_heldout')} runs "
                    "predicted" + (f"; own weights shrunk toward the cross-ladder ones by k = "
                                   f"{self.meta.get('k')}" if how == "shrunk" else ""))
        elif how == "cross-ladder":
            how += f": learned on the public ladders ({self.meta.get('why', 'short ladder')})"
        lines = [f"{len(self.fits)} law families on {self.runs.n_runs} runs; predict, tokens "
                 f"and optimal use their weighted average (weights {how})"]
        for k, f in self.fits.items():
            d = f.diagnostics
            gate = "gate passed" if d.passed else "GATE FAILED: " + "; ".join(d.problems)
            lines.append(f"  {k:<12} weight {self.weights[k]:.3f}  {f.method}, {d.chains} "
                         f"chains x {d.draws} draws, {gate}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ saving and loading
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write every family, the weights and their provenance to one file, atomically."""
        path = Path(path)
        if path.parent and not path.parent.exists():
            raise BayesScalingError(f"{path}: folder {path.parent} does not exist")
        head = xr.Dataset(attrs={
            "bayes_scaling_format": FORMAT_VERSION, "bayes_scaling_version": package_version(),
            "names_json": json.dumps(list(self.fits)),
            "weights_json": json.dumps(self.weights),
            "meta_json": json.dumps(dict(self.meta), sort_keys=True, default=str)})
        groups: dict[str, xr.Dataset] = {FAMILIES_GROUP: head, "fit_data": self.runs.to_xarray()}
        for k, f in self.fits.items():
            groups.update({f"{g}.{k}": ds for g, ds in f.to_groups().items()})
        with atomic_path(path) as tmp:
            write_groups(tmp, groups)
            append_checksum(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FamilyFit:
        """Read a multi-family file; every family is checked as :meth:`ScalingFit.load` does."""
        return cls.from_stored(Path(path), _read(Path(path)))

    @classmethod
    def from_stored(cls, path: Path, stored: Mapping[str, xr.Dataset]) -> FamilyFit:
        """A family fit from the groups of a saved file (``path`` names it in errors)."""
        if FAMILIES_GROUP not in stored:
            raise FitFileError(f"{path}: holds one fit, not several families (ScalingFit.load)")
        attrs = stored[FAMILIES_GROUP].attrs
        try:
            names = json.loads(str(attrs["names_json"]))
            weights = json.loads(str(attrs["weights_json"]))
            meta = json.loads(str(attrs.get("meta_json", "{}")))
            if not (isinstance(names, list) and isinstance(weights, dict)
                    and isinstance(meta, dict)):
                raise TypeError("names, weights or meta have the wrong type")
        except (KeyError, TypeError, ValueError) as exc:
            raise FitFileError(f"{path}: damaged family file ({type(exc).__name__}: {exc})") \
                from None
        fits = {}
        for k in names:
            groups = {g: stored[f"{g}.{k}"] for g in ("posterior", "sample_stats")
                      if f"{g}.{k}" in stored}
            fits[str(k)] = ScalingFit.from_groups(f"{path} [{k}]",
                                                  {**groups, "fit_data": stored["fit_data"]})
        try:
            return cls(fits, {str(k): float(v) for k, v in weights.items()}, meta)
        except (BayesScalingError, TypeError, ValueError) as exc:
            raise FitFileError(f"{path}: {exc}") from None


def _read(path: Path) -> dict[str, xr.Dataset]:
    if not path.is_file():
        raise FitFileError(f"{path}: no such fit file")
    verify_file(path)
    try:
        return read_groups(path)
    except Exception as exc:  # any reader failure means "not a fit file"
        raise FitFileError(f"{path}: not a readable fit file ({type(exc).__name__})") from None


def load_fit(path: str | os.PathLike[str]) -> ScalingFit | FamilyFit:
    """A saved fit: one family (:class:`ScalingFit`) or several (:class:`FamilyFit`).

    Parameters
    ----------
    path : str or path
        A file written by ``ScalingFit.save`` or ``FamilyFit.save`` (``bayes-scaling fit``).

    Returns
    -------
    ScalingFit or FamilyFit
        Checked as :meth:`ScalingFit.load` checks a fit (checksum, format, hashes), per family.
    """
    path = Path(path)
    stored = _read(path)
    if FAMILIES_GROUP in stored:
        return FamilyFit.from_stored(path, stored)
    return ScalingFit.from_groups(path, stored)


def family_meta(**extra: Any) -> dict[str, Any]:
    """Provenance of a family fit's weights (``weights_method``, ...), with time and versions."""
    return {"weights_method": "given", **extra,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": versions()}


def quantile_average(parts: Mapping[str, Any], weights: Mapping[str, float],
                     rng: np.random.Generator) -> Any:
    r"""The weighted **quantile average** of per-family draws (arrays ``(S_k, ...)``, or dicts).

    At each point (element after the draw axis) the average's quantile function is the
    weighted mean of the families' quantile functions on the log scale,
    :math:`\log Q(p) = \sum_k w_k \log Q_k(p)` (Vincentization; on the natural scale when a
    value is not positive). Unlike the linear pool, whose band widens by the families'
    disagreement on top of each family's own band, its band is as wide as the families'
    weighted mean band: the linear pool of calibrated forecasts is overdispersed (Gneiting &
    Ranjan 2013, Electron. J. Statist. 7:1747, doi:10.1214/13-EJS823), while the quantile
    average is sharper (Lichtendahl, Grushka-Cockayne & Winkler 2013, Manage. Sci. 59:1594,
    doi:10.1287/mnsc.1120.1667) and, the interval score being convex in the quantiles, the
    interval score of its log at every point is at most the weighted mean of the families'.

    ``max(S_k)`` draws at levels ``(i + 1/2) / S``, each family's order statistic there; rows
    are shuffled (the same order at every point: draws stay rank-coupled across points). Dicts
    are ranked by their first quantity at each point, the others following their draw
    (``N_opt``, ``D_opt = C / 6 N_opt`` and their ratio stay consistent on the log scale).
    Infinite values (an unreachable target) are an atom pooled linearly: the average is
    infinite with probability :math:`\sum_k w_k u_k` (``u_k``: family k's infinite share), and
    its finite part is the quantile average of the families' finite parts, weighted by
    :math:`w_k (1 - u_k)`.
    """
    names = [k for k in parts if float(weights.get(k, 0.0)) > 0]
    if not names:
        raise BayesScalingError("no family has a positive weight")
    w = np.array([float(weights[k]) for k in names])
    w = w / w.sum()
    keyed = isinstance(parts[names[0]], Mapping)
    keys = list(parts[names[0]]) if keyed else [None]

    def get(k: str, q: Any) -> np.ndarray:
        return np.asarray(parts[k][q] if keyed else parts[k], dtype=float)

    lead = {k: get(k, keys[0]) for k in names}
    arrays = {q: [np.broadcast_to(get(k, q), lead[k].shape) for k in names] for q in keys}
    log = {q: all(bool(np.all((a > 0) | np.isnan(a))) for a in arrays[q]) for q in keys}
    total = max(a.shape[0] for a in lead.values())
    levels = ((np.arange(total) + 0.5) / total).reshape((-1,) + (1,) * (lead[names[0]].ndim - 1))
    fin = [np.sum(np.isfinite(lead[k]), axis=0, keepdims=True) for k in names]
    inf_share = [1.0 - f / lead[k].shape[0] for f, k in zip(fin, names, strict=True)]
    p_inf = sum(wk * u for wk, u in zip(w, inf_share, strict=True))
    v = [wk * (1.0 - u) for wk, u in zip(w, inf_share, strict=True)]
    v_sum = sum(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = levels / (1.0 - p_inf)
    finite = cond < 1.0
    acc: dict[Any, Any] = dict.fromkeys(keys, 0.0)
    for i, k in enumerate(names):
        order = np.argsort(lead[k], axis=0, kind="stable")  # finite first, then inf
        idx = np.clip(np.floor(np.where(finite, cond, 0.0) * fin[i]).astype(int), 0,
                      np.maximum(fin[i] - 1, 0))
        share = np.where(v_sum > 0, v[i] / np.where(v_sum > 0, v_sum, 1.0), 0.0)
        for q in keys:
            a = np.take_along_axis(np.take_along_axis(arrays[q][i], order, axis=0), idx, axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                term = np.where(share > 0, share * (np.log(a) if log[q] else a), 0.0)
            acc[q] = acc[q] + term
    perm = rng.permutation(total)
    out = {q: np.where(finite, np.exp(acc[q]) if log[q] else acc[q], np.inf)[perm]
           for q in keys}
    return out if keyed else out[None]


def mix(fit: FamilyFit, parts: Mapping[str, Any], rng: np.random.Generator) -> Any:
    """The families' weighted average of per-family draws (arrays ``(S_k, ...)``, or dicts of
    them): their quantile average by ``fit.weights`` (:func:`quantile_average`)."""
    return quantile_average(parts, fit.weights, rng)


def draw_shape(fit: ScalingFit | FamilyFit, n_draws: int) -> tuple[int, int]:
    """``(chains, draws)`` of query draws: the fit's own, or one chain for a mixture."""
    if isinstance(fit, FamilyFit):
        return 1, int(n_draws)
    return fit.posterior.sizes[CHAIN], fit.posterior.sizes[DRAW]
