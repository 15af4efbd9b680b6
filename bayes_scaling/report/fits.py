"""The inputs of a risk report: the proposal's runs and the fits (saved fits reused).

:func:`load_proposal_runs` reads the proposal's run files (or registry data sets);
:func:`obtain_fit` returns a saved fit when its spec, data hash, sampler settings and package
version match, and fits (and saves) a new one otherwise. The sections that refit (the backtest,
the training dynamics) obtain their fits here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from bayes_scaling.data.registry import fetch, load_dataset, load_registry
from bayes_scaling.data.runs import RunTable, load_runs
from bayes_scaling.errors import FitFileError
from bayes_scaling.fitting.dynamics import fit_dynamics
from bayes_scaling.fitting.families import FamilyFit, load_fit
from bayes_scaling.fitting.fit import fit, fit_baseline
from bayes_scaling.fitting.result import PACKAGE, ScalingFit, versions
from bayes_scaling.model.gate import check_convergence
from bayes_scaling.model.spec import ModelSpec, load_spec
from bayes_scaling.report.common import sha256_of, shown_path, source_digest
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.types import ProgressFn

FitMethod = Literal["nuts", "huber-bootstrap", "dynamics"]


def load_proposal_runs(proposal: Proposal) -> tuple[RunTable, list[dict[str, Any]]]:
    """The proposal's run table and, per input file, its path, sha256 and row count.

    A registry name loads with the registry's loader options (overridden by the proposal's).
    Several files are concatenated; one without a group column becomes the group named after
    its stem.

    Parameters
    ----------
    proposal : Proposal
        A validated proposal.

    Returns
    -------
    tuple of (RunTable, list of dict)
        The runs and one record per input file (``entry``, ``path``, ``sha256``,
        ``rows_used``).
    """
    registry = load_registry()
    tables, files = [], []
    for entry in proposal.runs.files:
        opts = dict(proposal.runs.loader)
        if not Path(entry).exists() and entry in registry:
            path = fetch(entry)
            table = load_dataset(entry, **opts)
        elif Path(entry).is_file():
            path, table = Path(entry), load_runs(entry, **opts)
        else:
            raise proposal.error("runs.files", f"names {entry!r}: neither a file nor a "
                                 f"registry data set ({', '.join(registry)})")
        files.append({"entry": entry, "path": shown_path(path), "sha256": sha256_of(path),
                      "rows_used": table.n_runs})
        tables.append((Path(entry).stem, table))
    if len(tables) == 1:
        return tables[0][1], files
    frames = []
    for stem, t in tables:
        f = t.frame.copy()
        if t.group_names == ("all",):
            f["group"] = stem
        f["run_id"] = [f"{stem}:{r}" for r in f["run_id"]]
        frames.append(f)
    merged = pd.concat(frames, ignore_index=True)
    return load_runs(merged, param_count=tables[0][1].param_count), files


def cache_path(cache_dir: Path, spec: ModelSpec, runs: Any, method: FitMethod = "nuts") -> Path:
    """The cache path of a fit: ``<cache_dir>/<model>-<spec_hash[:12]>-<data_hash[:12]>.nc``.

    ``<model>.<method>`` for a fit other than NUTS, e.g. the Huber+bootstrap baseline.

    Parameters
    ----------
    cache_dir : Path
        Folder of saved fits.
    spec : ModelSpec
        The model.
    runs : RunTable or CurveTable
        The data (its fingerprint names the file).
    method : {"nuts", "huber-bootstrap", "dynamics"}
        How the fit is made.

    Returns
    -------
    Path
        Where the fit is saved.
    """
    tag = spec.name if method in ("nuts", "dynamics") else f"{spec.name}.{method}"
    return Path(cache_dir) / f"{tag}-{spec.sha256()[:12]}-{runs.fingerprint()[:12]}.nc"


def reusable(cached: ScalingFit, spec: ModelSpec, runs: Any, method: FitMethod,
             settings: Mapping[str, Any]) -> bool:
    """Whether a saved fit answers for a new one.

    Same spec, data, method, (NUTS) draws, the same bayes_scaling version and the same package
    code (``meta["source_sha256"]``, written when the report saved the fit): a new version, or
    new code under the same version number, may fit or calibrate differently.
    """
    if cached.spec.sha256() != spec.sha256() or cached.runs.fingerprint() != runs.fingerprint():
        return False
    if cached.meta.get("versions", {}).get(PACKAGE) != versions().get(PACKAGE):
        return False
    if cached.meta.get("source_sha256") != source_digest():
        return False
    if method == "huber-bootstrap":
        return cached.method == method
    d = cached.diagnostics
    calibrated = "kappa" in cached.posterior or method == "dynamics"
    asked = cached.meta.get("draws_requested", d.draws)  # a retry may have drawn more
    return (cached.method != "huber-bootstrap" and calibrated
            and (d.chains, asked) == (settings["chains"], settings["draws"]))


def obtain_fit(spec: ModelSpec, runs: Any, *, settings: Mapping[str, Any],
               seed: int, cache_dir: Path | None, on_bad: str = "warn",
               tell: ProgressFn = lambda _m: None,
               method: FitMethod = "nuts") -> tuple[ScalingFit, dict[str, Any]]:
    """A saved fit when its spec, data hash and sampler settings match; else a new one (saved).

    Parameters
    ----------
    spec : ModelSpec
        The model.
    runs : RunTable or CurveTable
        The data.
    settings : Mapping
        Sampler settings (``chains``, ``draws``, ``tune``, ``target_accept``, ``backend``).
    seed : int
        Seed of a new fit.
    cache_dir : Path or None
        Folder of saved fits; ``None``: always fit, save nothing.
    on_bad : str, default "warn"
        What a fit that fails the convergence gate does (``"raise"`` also checks a saved one).
    tell : callable
        Progress callback.
    method : {"nuts", "huber-bootstrap", "dynamics"}
        :func:`~bayes_scaling.fitting.fit.fit` with ``settings``,
        :func:`~bayes_scaling.fitting.fit.fit_baseline` or
        :func:`~bayes_scaling.fitting.dynamics.fit_dynamics` on a curve table.

    Returns
    -------
    tuple of (ScalingFit, dict)
        The fit and a provenance record (``file``, ``reused``).
    """
    path = cache_path(cache_dir, spec, runs, method) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = ScalingFit.load(path)
        except FitFileError as exc:
            tell(f"ignoring unreadable saved fit ({exc})")
        else:
            if reusable(cached, spec, runs, method, settings):
                tell(f"reusing saved fit {path}")
                if on_bad == "raise":  # a saved fit passes the same gate as a new one
                    check_convergence(cached.diagnostics, on_bad="raise")
                return cached, {"file": shown_path(path), "reused": True}
    if method == "nuts":
        tell(f"fitting {spec.name} on {runs.n_runs} runs ({settings['chains']} chains x "
             f"{settings['draws']} draws)")
        fitted = fit(spec, runs, random_seed=seed, on_bad=on_bad,  # type: ignore[arg-type]
                     on_progress=tell, **settings)
    elif method == "dynamics":
        tell(f"fitting {spec.name} on {runs.n_points} checkpoints of {runs.n_curves} loss curves")
        fitted = fit_dynamics(spec, runs, random_seed=seed, on_bad=on_bad, on_progress=tell,
                              **settings)
    else:
        tell(f"fitting the {method} baseline of {spec.name} on {runs.n_runs} runs")
        fitted = fit_baseline(spec, runs, random_seed=seed)
    if path is not None:
        fitted = dataclasses.replace(fitted, meta={**fitted.meta,
                                                   "source_sha256": source_digest()})
        path.parent.mkdir(parents=True, exist_ok=True)
        fitted.save(path)
    return fitted, {"file": shown_path(path), "reused": False}


def fit_settings(proposal: Proposal) -> dict[str, Any]:
    """The proposal's sampler settings as keyword arguments of a fit."""
    f = proposal.fit
    out: dict[str, Any] = {"chains": f.chains, "draws": f.draws, "tune": f.tune,
                           "target_accept": f.target_accept}
    if f.backend:
        out["backend"] = f.backend
    return out


def proposal_fits(proposal: Proposal, runs: RunTable,
                  ) -> tuple[dict[str, ScalingFit], dict[str, dict[str, Any]],
                             dict[str, Any] | None]:
    """The fits of the file a proposal names (``models.fit``), checked against the proposal.

    Parameters
    ----------
    proposal : Proposal
        A proposal with ``fit_file`` set.
    runs : RunTable
        The proposal's runs: every family in the file must have been fitted on exactly these
        (same data hash).

    Returns
    -------
    tuple of (dict, dict, dict or None)
        ``{family: fit}`` (keyed and ordered as ``models.families`` names them, else as the
        file does), a provenance record per family, and for a family file its
        weights and how they were made (``{"weights": ..., "meta": ...}``; ``None`` for a file
        of one family).

    Raises
    ------
    ProposalError
        One line naming the proposal, ``models.fit`` and the file: unreadable or damaged
        (checksum), fitted on other runs (data hash), other families or specs than
        ``models.families``; :class:`~bayes_scaling.errors.ConvergenceError` with
        ``fit.strict`` when a family failed the convergence gate.
    """
    path = str(proposal.fit_file)
    try:
        saved = load_fit(path)
    except FitFileError as exc:
        raise proposal.error("models.fit", f"cannot be used: {exc}") from None
    fam = saved if isinstance(saved, FamilyFit) else None
    held = dict(saved.fits) if fam is not None else {saved.spec.name: saved}
    first = next(iter(held.values()))
    if first.runs.fingerprint() != runs.fingerprint():
        raise proposal.error("models.fit", f"{path} was fitted on other runs than the "
                             f"proposal's (data hash {first.runs.fingerprint()[:12]}, runs.files "
                             f"give {runs.fingerprint()[:12]}): refit it on these runs or drop "
                             "models.fit")
    keys = {name: name for name in held}
    if proposal.families:
        keys = _match_families(proposal, held, path)
    if proposal.fit.strict:
        for f in held.values():
            check_convergence(f.diagnostics, on_bad="raise")
    file_rec = {"file": shown_path(path), "reused": True, "given": "models.fit",
                "sha256": sha256_of(path)}
    fits = {entry: held[name] for name, entry in keys.items()}  # the proposal's order
    prov = {k: dict(file_rec) for k in fits}
    stacked = None
    if fam is not None:
        stacked = {"weights": {keys[k]: float(w) for k, w in fam.weights.items()},
                   "meta": {**dict(fam.meta), "file": shown_path(path)}}
    return fits, prov, stacked


def _match_families(proposal: Proposal, held: Mapping[str, ScalingFit],
                    path: str) -> dict[str, str]:
    """``{name in the file: entry of models.families}``; one line if they differ."""
    specs = {entry: load_spec(entry) for entry in proposal.families}
    wanted = {s.name: entry for entry, s in specs.items()}
    if set(wanted) != set(held):
        raise proposal.error("models.families", f"lists {', '.join(sorted(wanted))}; models.fit "
                             f"{path} holds {', '.join(held)} (list the file's families, or "
                             "drop models.families to use them all)")
    for name, entry in wanted.items():
        if held[name].spec.sha256() != specs[entry].sha256():
            raise proposal.error("models.fit", f"{path}: its {name} was fitted with another "
                                 f"spec than {entry!r} gives now (spec hash "
                                 f"{held[name].spec.sha256()[:12]} vs "
                                 f"{specs[entry].sha256()[:12]})")
    return wanted
