"""A fit as a value that describes and verifies itself: :class:`ScalingFit` and its file format.

A fit is saved as one netCDF file (h5netcdf, no pickles) holding the posterior, the sampler
statistics, the run table (``fit_data`` group), the spec as JSON, the hashes of both, the seed,
the package versions and the diagnostics. :meth:`ScalingFit.load` rechecks both hashes and never
imports PyMC, so queries on a saved fit start fast.

Files are written through :func:`bayes_scaling.files.atomic_path`, so an interrupted save leaves
the previous file intact. A saved fit ends with a checksum trailer (the sha256 of the bytes
before it, which HDF5 ignores): a damaged file is refused before the HDF5 library parses it,
since a corrupted HDF5 file can make that library loop for hours.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as _md
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayes_scaling.data.curves import CurveTable
from bayes_scaling.data.runs import RunTable
from bayes_scaling.data.support import DISCREPANCY_VARS, levels
from bayes_scaling.errors import BayesScalingError, FitFileError
from bayes_scaling.files import atomic_path
from bayes_scaling.fitting.draws import KEPT_GROUPS, Draws, read_groups, write_groups
from bayes_scaling.laws.final_loss import Law
from bayes_scaling.laws.registry import law_of
from bayes_scaling.model.gate import Diagnostics
from bayes_scaling.model.spec import ModelSpec

#: Version of the saved-fit layout; bump when a saved file would be read differently.
FORMAT_VERSION = 1


#: Fewer distinct model sizes (or token counts) than this: the exponents are weakly identified.
FEW_LEVELS = 5


#: Oldest layout this version still reads.
MIN_FORMAT_VERSION = 1


#: Start of the checksum trailer of a saved fit: the tag, 64 hex digits of sha256, a newline.
CHECKSUM_TAG = b"\nbayes_scaling-sha256:"


_TRAILER_LEN = len(CHECKSUM_TAG) + 65


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


PACKAGE = "bayes_scaling"


def package_version() -> str:
    """Installed version of bayes_scaling (or ``"0+unknown"`` when run from a bare checkout)."""
    try:
        return _md.version(PACKAGE)
    except _md.PackageNotFoundError:
        return "0+unknown"


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on (stored in every saved fit)."""
    out = {}
    for name in (PACKAGE, "pymc", "pytensor", "arviz", "numpy", "xarray", "numpyro", "jax",
                 "nutpie", "scipy"):
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class ScalingFit:
    """Posterior of a scaling-law model, with what is needed to query and reproduce it.

    Attributes
    ----------
    idata
        ArviZ InferenceData: ``posterior`` (dims ``chain, draw`` and ``group`` for varying
        constants; natural-scale constants named after the law's parameters, plus ``sigma``,
        ``nu``, ``<p>_pop``, ``<p>_tau`` and, once calibrated, ``kappa``) and ``sample_stats``.
    spec, runs
        The model spec and the run table it was fitted on.
    diagnostics
        Convergence diagnostics and the verdict of the gate.
    meta
        Seed, method, input centre, versions, creation time.
    """

    idata: Draws
    spec: ModelSpec
    runs: RunTable
    diagnostics: Diagnostics
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the samplers hand over ArviZ InferenceData; a fit keeps its groups as plain xarray
        object.__setattr__(self, "idata", Draws.of(self.idata))

    # ------------------------------------------------------------------ convenient views
    @property
    def law(self) -> Law:
        """The fitted law."""
        return law_of(self.spec.law)

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws."""
        return self.idata.posterior

    @property
    def group_names(self) -> tuple[str, ...]:
        """Groups (data distributions) seen in the fit."""
        return self.runs.group_names

    @property
    def method(self) -> str:
        """``"nuts"`` for a posterior, ``"huber-bootstrap"`` for the point-fit baseline."""
        return str(self.meta.get("method", "nuts"))

    @property
    def warning_banner(self) -> str:
        """The line every output using this fit must show ("" when it can be trusted).

        It names a failed convergence gate and too few distinct model sizes or token counts
        to identify the exponents (:meth:`identification_warning`).
        """
        return " ".join(w for w in (self.diagnostics.banner(), self.identification_warning())
                        if w)

    def identification_warning(self) -> str:
        """A warning when the runs hold fewer than :data:`FEW_LEVELS` distinct N (or D) levels.

        Levels are counted as in backtests (values within 2% are one level: digitised ladders
        give one size as several floats). With so few, the exponents rest on a handful of
        points and their bands are mostly prior; "" when there are enough.
        """
        short = []
        for axis, what in (("n", "model sizes (N)"), ("d", "token counts (D)")):
            values = getattr(self.runs, axis, None) if axis in self.law.inputs else None
            if values is None or len(values) == 0:
                continue
            k = int(levels(np.asarray(values, dtype=float)).max()) + 1
            if k < FEW_LEVELS:
                short.append(f"{k} distinct {what}")
        if not short:
            return ""
        return (f"WARNING: only {' and '.join(short)} in the runs (fewer than {FEW_LEVELS}): "
                "the exponents are weakly identified and extrapolations rest on few points; "
                "add sizes to the ladder")

    def constants(self) -> xr.Dataset:
        """The law's natural constants (``e``, ``a``, ``alpha``...) per draw (and group)."""
        post = self.posterior
        out = {}
        for p in self.law.params:
            out[p[4:] if p.startswith("log_") else p] = (
                np.exp(post[p]) if p.startswith("log_") else post[p])
        return xr.Dataset(out)

    # ------------------------------------------------------------------ saving and loading
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fit to ``path`` atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        if path.parent and not path.parent.exists():
            raise BayesScalingError(f"{path}: folder {path.parent} does not exist")
        groups = {**self.to_groups(), "fit_data": self.runs.to_xarray()}
        with atomic_path(path) as tmp:
            write_groups(tmp, groups)
            append_checksum(tmp)
        return path

    def to_groups(self) -> dict[str, xr.Dataset]:
        """The ``posterior`` and ``sample_stats`` groups of the saved file.

        The posterior's attributes hold the spec, hashes, meta and diagnostics; the run table
        is written as ``fit_data`` by the caller.
        """
        attrs = {
            "bayes_scaling_format": FORMAT_VERSION,
            "bayes_scaling_version": package_version(),
            "spec_json": self.spec.to_json(),
            "spec_hash": self.spec.sha256(),
            "data_sha256": self.runs.fingerprint(),
            "meta_json": json.dumps(dict(self.meta), sort_keys=True, default=str),
            **self.diagnostics.to_attrs(),
        }
        groups = {g: self.idata[g].copy() for g in self.idata.groups()
                  if g in ("posterior", "sample_stats")}
        groups["posterior"].attrs.update(attrs)
        for name, ds in groups.items():
            # attribute values from the samplers may be non-serialisable objects
            ds.attrs = {k: v for k, v in ds.attrs.items()
                        if isinstance(v, str | int | float | np.number)}
            groups[name] = ds
        return groups

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScalingFit:
        """Read a saved fit, checking its format version and the spec and data hashes."""
        path = Path(path)
        if not path.is_file():
            raise FitFileError(f"{path}: no such fit file")
        verify_file(path)
        try:  # read everything now and close the file, so it can be replaced while in use
            stored = read_groups(path)
        except Exception as exc:  # any reader failure means "not a fit file"
            raise FitFileError(f"{path}: not a readable fit file ({type(exc).__name__})") from None
        if "families" in stored:
            raise FitFileError(f"{path}: holds several law families (saved by `fit --model "
                               "a,b,...`); load it with bayes_scaling.load_fit")
        return cls.from_groups(path, stored)

    @classmethod
    def from_groups(cls, path: str | os.PathLike[str],
                    stored: Mapping[str, xr.Dataset]) -> ScalingFit:
        """A fit from the groups of a saved file (``path`` names it in errors), all checked."""
        if "posterior" not in stored or "fit_data" not in stored:
            raise FitFileError(f"{path}: not a bayes_scaling fit (no posterior/fit_data group)")
        posterior, table = stored["posterior"], stored["fit_data"]
        attrs = posterior.attrs
        note = _check_format(Path(path), attrs)
        try:
            spec = ModelSpec.from_json(str(attrs["spec_json"]))
            runs = _table_class(table).from_xarray(table)
            diag = _checked_diagnostics(Diagnostics.from_attrs(attrs))
            meta = _checked_meta(json.loads(str(attrs.get("meta_json", "{}"))))
            _check_posterior(posterior, law_of(spec.law).params, runs.group_names)
        except BayesScalingError as exc:
            raise FitFileError(f"{path}: {exc}{note}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FitFileError(f"{path}: damaged fit file ({type(exc).__name__}: {exc}){note}") \
                from None
        if spec.sha256() != attrs.get("spec_hash"):
            raise FitFileError(f"{path}: the stored spec does not match its hash{note}")
        if runs.fingerprint() != attrs.get("data_sha256"):
            raise FitFileError(f"{path}: the stored run table does not match its hash{note}")
        keep = {g: stored[g] for g in KEPT_GROUPS if g in stored}
        return cls(Draws(**keep), spec, runs, diag, meta)


def with_posterior(fit_: ScalingFit, extra: Mapping[str, xr.DataArray],
                   meta: Mapping[str, Any] | None = None) -> ScalingFit:
    """A copy of ``fit_`` with variables added to its posterior (and meta entries merged)."""
    post = fit_.posterior.assign(**dict(extra))
    groups = {**fit_.idata, "posterior": post}
    return ScalingFit(Draws(**groups), fit_.spec, fit_.runs, fit_.diagnostics,
                      {**fit_.meta, **(meta or {})})


def _sha256_prefix(path: Path, n_bytes: int) -> str:
    """Sha256 of the first ``n_bytes`` bytes of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        left = n_bytes
        while left > 0:
            block = fh.read(min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def append_checksum(path: Path) -> None:
    """Append the checksum trailer (sha256 of the file so far) to a freshly written fit."""
    size = path.stat().st_size
    digest = _sha256_prefix(path, size)
    with path.open("ab") as fh:
        fh.write(CHECKSUM_TAG + digest.encode("ascii") + b"\n")


def verify_file(path: Path) -> None:
    """Refuse a file that is not HDF5, or whose checksum trailer does not match its bytes.

    A file without a trailer (written before trailers existed, or by another tool) is passed
    on to the HDF5 reader unchecked.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(len(_HDF5_SIGNATURE))
            fh.seek(max(size - 2 * _TRAILER_LEN, 0))
            region = fh.read()
        tail = region[-_TRAILER_LEN:]
        if head != _HDF5_SIGNATURE:
            raise FitFileError(f"{path}: not a readable fit file (not netCDF-4/HDF5; fits are "
                               "the .nc files written by `bayes-scaling fit --out`)")
        if not (len(tail) == _TRAILER_LEN and tail.startswith(CHECKSUM_TAG)):
            if CHECKSUM_TAG[:8] in region:  # a trailer, cut short or followed by other bytes
                raise FitFileError(f"{path}: damaged fit file: its checksum trailer is cut "
                                   "short or followed by other bytes (truncated or appended "
                                   "to since it was saved); refit, or restore a copy")
            return
        found = _sha256_prefix(path, size - _TRAILER_LEN)
    except OSError as exc:
        raise FitFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    stored = tail[len(CHECKSUM_TAG):-1].decode("ascii", errors="replace")
    if found != stored:
        raise FitFileError(f"{path}: damaged fit file: its bytes do not match the checksum "
                           "written with it (truncated, edited or corrupted since it was "
                           "saved); refit, or restore a copy")


def _saved_by(attrs: Mapping[str, Any]) -> str:
    return (f"saved by bayes_scaling {attrs.get('bayes_scaling_version', '?')} (format "
            f"{attrs.get('bayes_scaling_format', '?')}); this is {package_version()} "
            f"(format {FORMAT_VERSION})")


def _check_format(path: Path, attrs: Mapping[str, Any]) -> str:
    """Check the layout version; return a note naming both versions when they differ."""
    fmt = attrs.get("bayes_scaling_format")
    if fmt is None:
        raise FitFileError(f"{path}: not a bayes_scaling fit (no format attribute)")
    try:
        fmt = int(fmt)
    except (TypeError, ValueError):
        raise FitFileError(f"{path}: damaged fit file (format attribute {fmt!r} is not an "
                           "integer)") from None
    if fmt > FORMAT_VERSION:
        raise FitFileError(f"{path}: {_saved_by(attrs)}: upgrade bayes_scaling to read it")
    if fmt < MIN_FORMAT_VERSION:
        raise FitFileError(f"{path}: {_saved_by(attrs)}, which reads formats "
                           f"{MIN_FORMAT_VERSION}-{FORMAT_VERSION}: refit with this version")
    if str(attrs.get("bayes_scaling_version")) != package_version():
        return f" ({_saved_by(attrs)})"
    return ""


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _checked_meta(meta: Any) -> dict[str, Any]:
    """The stored meta, refused unless the entries queries and reports read are well-typed."""
    if not isinstance(meta, dict):
        raise TypeError(f"meta_json holds a {type(meta).__name__}, not an object")
    for key, types in _META_TYPES.items():
        if key in meta and (isinstance(meta[key], bool) or not isinstance(meta[key], types)):
            raise TypeError(f"meta entry {key!r} is {meta[key]!r}")
    box = meta.get("box")
    if box is not None and not (set(box) >= {"n", "d", "c"} and all(
            isinstance(box[k], list) and len(box[k]) == 2 and all(map(_is_number, box[k]))
            for k in ("n", "d", "c")) and all(
            isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))
            for v in box.get("hull", [])) and isinstance(box.get("distance", ""), str)):
        raise TypeError(f"meta entry 'box' is {box!r}")
    cal = meta.get("calibration") or {}
    bad = [k for k in _CALIBRATION_NUMBERS if k in cal and not _is_number(cal[k])]
    if bad:
        raise TypeError(f"meta calibration entries {bad} are not numbers")
    drift = cal.get("drift")
    if drift is not None and not (isinstance(drift, dict) and all(
            isinstance(v, dict) and _is_number(v.get("value")) and _is_number(v.get("sd"))
            for v in drift.values())):
        raise TypeError(f"meta calibration entry 'drift' is {drift!r}")
    reach = cal.get("reach")
    if reach is not None and not (isinstance(reach, dict) and all(
            isinstance(v, dict) and all(_is_number(v.get(k))
                                        for k in ("x_max", "drift_pop", "kappa_pop"))
            for v in reach.values())):
        raise TypeError(f"meta calibration entry 'reach' is {reach!r}")
    return meta


def _checked_diagnostics(diag: Diagnostics) -> Diagnostics:
    """The stored diagnostics, refused unless every number is a number."""
    for name in ("max_rhat", "min_ess_bulk", "min_ess_tail", "sampling_seconds", "divergences",
                 "chains", "draws"):
        if not _is_number(getattr(diag, name)):
            raise TypeError(f"diagnostics {name} is {getattr(diag, name)!r}, not a number")
    if not all(isinstance(p, str) for p in diag.problems):
        raise TypeError("diagnostics problems are not strings")
    return diag


def _check_posterior(post: xr.Dataset, params: tuple[str, ...],
                     groups: tuple[str, ...]) -> None:
    """Refuse a posterior whose variables queries could not use (names, dims, dtypes, values).

    A non-finite draw of any variable a query reads (the constants, their population values and
    spreads, the noise and discrepancy scales) is refused: a query would average it into a
    median of ``inf`` or ``nan`` and print it as a result.
    """
    missing = [p for p in params if p not in post]
    if missing:
        raise FitFileError(f"posterior lacks {', '.join(missing)}")
    read = (*params, *(f"{p}{s}" for p in params for s in ("_pop", "_tau")),
            "sigma", "nu", *DISCREPANCY_VARS, "sigma_curve")
    for name in read:
        if name not in post:
            continue
        da = post[name]
        if da.dtype.kind not in "fiu":
            raise FitFileError(f"posterior variable {name} has dtype {da.dtype}, not numbers")
        n_bad = int(da.size - np.count_nonzero(np.isfinite(da.values)))
        if n_bad:
            raise FitFileError(f"posterior variable {name} has {n_bad} non-finite draws of "
                               f"{da.size}: a query would report them")
        if da.dims[:2] != ("chain", "draw") or not set(da.dims[2:]) <= {"group"}:
            raise FitFileError(f"posterior variable {name} has dims {da.dims}; expected "
                               "(chain, draw) or (chain, draw, group)")
        if "group" in da.dims and tuple(str(g) for g in da["group"].values) != groups:
            raise FitFileError(f"posterior variable {name} has groups that are not those "
                               "of the stored runs")


def _table_class(ds: xr.Dataset) -> Any:
    """The class of the table stored in a fit file: ``RunTable``, or a ``CurveTable``."""
    if ds.attrs.get("table") == "curves":
        return CurveTable
    return RunTable


#: Types of the meta entries that code reads back (a crafted file must not crash a query).
_META_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,), "backend": (str,), "created": (str,), "seed": (int, type(None)),
    "target_accept": (int, float), "tune": (int,), "draws_requested": (int,), "versions": (dict,),
    "calibration": (dict,), "box": (dict,), "run_length_centre": (int, float, type(None)),
}


_CALIBRATION_NUMBERS = ("kappa_mean", "tau0_mean", "kappa_shape_mean", "tau0_shape_mean",
                        "drift_scale_mean", "drift_shape_mean", "n_heldout", "n_refits",
                        "noise_scale", "max_distance")
