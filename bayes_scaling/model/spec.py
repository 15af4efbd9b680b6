"""Declarative model specs: one TOML file per model (law, priors, hierarchy, likelihood).

A spec is checked against its law on load: every law parameter needs a prior, every varying
parameter must be a log-scale constant of the law, distributions and their arguments must be
known. ``model.py`` turns a spec into a PyMC graph; nothing else reads the TOML.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bayes_scaling.errors import SpecError
from bayes_scaling.files import shipped
from bayes_scaling.laws.registry import ALL_LAWS, CURVE_LAWS

MODELS_DIR = shipped("models")

#: Distribution name -> its required arguments (PyMC names).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "LogNormal": ("mu", "sigma"),
    "HalfNormal": ("sigma",),
    "Gamma": ("alpha", "beta"),
    "Exponential": ("lam",),
    "TruncatedNormal": ("mu", "sigma", "lower", "upper"),
}
LIKELIHOODS = ("normal", "studentt")
#: Residual structure along a curve: ``iid`` checkpoint noise, or ``ou`` (an Ornstein-Uhlenbeck
#: process in log steps: AR(1) for unevenly spaced checkpoints; curve laws, Normal likelihood).
RESIDUALS = ("iid", "ou")
#: Whole-curve offsets of a curve law: ``curve`` (one per curve, sd ``sigma_curve``, integrated
#: out), ``none`` (the curve-to-curve spread goes into ``sigma``; see ``benchmarks/results/
#: residual.md``: per-curve offsets let a misfit shared by every curve pull the size exponent)
#: or ``run_length`` (as ``curve``, with offset mean ``run_length_slope`` times the curve's
#: centred log schedule length: ``benchmarks/CRITERIA_s11_i16.md``).
CURVE_OFFSETS = ("curve", "none", "run_length")
#: Run-length terms of a schedule-aware curve law (``likelihood.run_length_term``; see
#: :func:`bayes_scaling.model.centre.transform_inputs`): ``none`` (default), ``anneal`` (the
#: annealing fraction scaled by a power of the run length), ``area`` (the forward area).
RUN_LENGTH_TERMS = ("none", "anneal", "area")
#: Default prior of the OU correlation length (natural-log steps) of a ``residual = "ou"`` spec.
DEFAULT_RESIDUAL_LENGTH = {"dist": "LogNormal", "mu": 0.0, "sigma": 1.0}
PARAMETERIZATIONS = ("auto", "centred", "noncentred")
#: Under ``parameterization = "auto"`` a hierarchy is centred when every group has this many runs.
CENTRED_MIN_RUNS = 20


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a PyMC distribution name and its keyword arguments."""

    dist: str
    kwargs: Mapping[str, float]

    @classmethod
    def parse(cls, raw: Any, where: str) -> Prior:
        """Read ``{dist = "Normal", mu = 0, sigma = 1}``; ``where`` names it in errors."""
        if not isinstance(raw, Mapping) or "dist" not in raw:
            raise SpecError(f"{where}: expected a table with a 'dist' key, got {raw!r}")
        dist = raw["dist"]
        if dist not in DISTRIBUTIONS:
            close = difflib.get_close_matches(str(dist), DISTRIBUTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"{where}: unknown distribution {dist!r}{hint}")
        kwargs = {k: v for k, v in raw.items() if k != "dist"}
        needed = DISTRIBUTIONS[dist]
        if set(kwargs) != set(needed):
            raise SpecError(f"{where}: {dist} takes {', '.join(needed)}; got {', '.join(kwargs)}")
        for k, v in kwargs.items():
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise SpecError(f"{where}: {k} must be a number, got {v!r}")
        for k in ("sigma", "alpha", "beta", "lam"):
            if k in kwargs and kwargs[k] <= 0:
                raise SpecError(f"{where}: {k} must be > 0, got {kwargs[k]}")
        return cls(dist, {k: float(v) for k, v in kwargs.items()})

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON form."""
        return {"dist": self.dist, **self.kwargs}

    def describe(self) -> str:
        """Human-readable form, e.g. ``Normal(mu=0.5, sigma=0.5)``."""
        return f"{self.dist}({', '.join(f'{k}={v:g}' for k, v in self.kwargs.items())})"


@dataclass(frozen=True)
class Likelihood:
    """Observation model on log loss."""

    family: str = "studentt"
    sigma: Prior = field(default_factory=lambda: Prior("HalfNormal", {"sigma": 0.05}))
    nu: Prior | None = field(default_factory=lambda: Prior("Gamma", {"alpha": 2.0, "beta": 0.1}))
    #: ``"iid"``, or ``"ou"``: residuals along each curve follow an OU process in log steps of
    #: stationary sd ``sigma`` and correlation length ``residual_length`` (curve laws only).
    residual: str = "iid"
    residual_length: Prior | None = None
    #: Curve laws: ``"curve"`` (whole-curve offsets), ``"none"`` or ``"run_length"``
    #: (:data:`CURVE_OFFSETS`).
    curve_offsets: str = "curve"
    #: Curve laws with a schedule term: ``"none"``, ``"anneal"`` or ``"area"``
    #: (:data:`RUN_LENGTH_TERMS`).
    run_length_term: str = "none"


@dataclass(frozen=True)
class Hierarchy:
    """Which constants vary by group, their spread prior and the parameterization."""

    varying: tuple[str, ...] = ()
    tau: Prior = field(default_factory=lambda: Prior("HalfNormal", {"sigma": 0.1}))
    parameterization: str = "auto"


@dataclass(frozen=True)
class ModelSpec:
    """A whole model: law, priors (on the centred scale), likelihood and hierarchy."""

    name: str
    law: str
    priors: Mapping[str, Prior]
    likelihood: Likelihood = field(default_factory=Likelihood)
    hierarchy: Hierarchy = field(default_factory=Hierarchy)
    description: str = ""

    # ----------------------------------------------------------------------------- reading
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "<spec>") -> ModelSpec:
        """Build and validate a spec from its TOML/JSON dictionary."""
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: expected a table")
        unknown = set(raw) - {"name", "law", "description", "priors", "likelihood", "hierarchy"}
        if unknown:
            raise SpecError(f"{where}: unknown keys {sorted(unknown)}")
        law_name = raw.get("law")
        known = {k: v.params for k, v in ALL_LAWS.items()}
        if law_name not in known:
            close = difflib.get_close_matches(str(law_name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            raise SpecError(f"{where}: unknown law {law_name!r}{hint}")
        law = SimpleNamespace(params=known[law_name])
        raw_priors = raw.get("priors", {})
        missing = [p for p in law.params if p not in raw_priors]
        extra = [p for p in raw_priors if p not in law.params]
        if missing or extra:
            raise SpecError(f"{where}: law {law_name!r} has parameters {', '.join(law.params)}; "
                            f"missing priors: {missing or 'none'}, unknown: {extra or 'none'}")
        priors = {p: Prior.parse(raw_priors[p], f"{where}: priors.{p}") for p in law.params}
        lik = _parse_likelihood(raw.get("likelihood", {}), where)
        if lik.curve_offsets != "curve" and law_name not in CURVE_LAWS:
            raise SpecError(f"{where}: likelihood.curve_offsets = {lik.curve_offsets!r} needs a "
                            f"curve law ({', '.join(CURVE_LAWS)}); law {law_name!r} fits one "
                            "loss per run")
        if lik.run_length_term != "none" and (law_name not in CURVE_LAWS or "anneal" not in
                                              CURVE_LAWS[law_name].inputs):
            raise SpecError(f"{where}: likelihood.run_length_term = {lik.run_length_term!r} "
                            f"needs a curve law with a schedule term (inputs s1, anneal); law "
                            f"{law_name!r} has none")
        if lik.residual != "iid" and law_name not in CURVE_LAWS:
            raise SpecError(f"{where}: likelihood.residual = {lik.residual!r} needs a curve law "
                            f"({', '.join(CURVE_LAWS)}); law {law_name!r} fits one loss per run")
        hier = _parse_hierarchy(raw.get("hierarchy", {}), law.params, where)
        return cls(name=str(raw.get("name", law_name)), law=law_name, priors=priors,
                   likelihood=lik, hierarchy=hier, description=str(raw.get("description", "")))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> ModelSpec:
        """Read a spec file."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError(f"{path}: no such model spec") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Inverse of :meth:`to_json` (used when loading a saved fit)."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"stored spec is not valid JSON ({exc})") from None
        return cls.from_dict(raw, where="<stored spec>")

    # ----------------------------------------------------------------------------- writing
    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (round-trips through :meth:`from_dict`)."""
        lik: dict[str, Any] = {"family": self.likelihood.family,
                               "sigma": self.likelihood.sigma.to_dict()}
        if self.likelihood.nu is not None:
            lik["nu"] = self.likelihood.nu.to_dict()
        if self.likelihood.residual != "iid":  # iid specs keep their hash (saved fits check it)
            lik["residual"] = self.likelihood.residual
            lik["residual_length"] = self.likelihood.residual_length.to_dict()
        if self.likelihood.curve_offsets != "curve":  # the default keeps old hashes too
            lik["curve_offsets"] = self.likelihood.curve_offsets
        if self.likelihood.run_length_term != "none":
            lik["run_length_term"] = self.likelihood.run_length_term
        return {
            "name": self.name, "law": self.law, "description": self.description,
            "priors": {p: pr.to_dict() for p, pr in self.priors.items()},
            "likelihood": lik,
            "hierarchy": {"varying": list(self.hierarchy.varying),
                          "tau": self.hierarchy.tau.to_dict(),
                          "parameterization": self.hierarchy.parameterization},
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), the form stored inside saved fits."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def sha256(self) -> str:
        """Hash of the canonical JSON: two specs are the same model iff their hashes match."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def with_likelihood(self, family: str) -> ModelSpec:
        """The same model with another likelihood family (``normal`` or ``studentt``)."""
        if family not in LIKELIHOODS:
            raise SpecError(f"unknown likelihood {family!r}; choose from {', '.join(LIKELIHOODS)}")
        nu = self.likelihood.nu or Prior("Gamma", {"alpha": 2.0, "beta": 0.1})
        if family == "studentt" and self.likelihood.residual != "iid":
            raise SpecError(f"residual {self.likelihood.residual!r} needs the normal likelihood")
        lik = replace(self.likelihood, family=family, nu=nu if family == "studentt" else None)
        return replace(self, likelihood=lik)

    def with_residual(self, residual: str) -> ModelSpec:
        """The same model with another residual structure along curves (``iid`` or ``ou``).

        ``ou`` keeps the spec's own ``residual_length`` prior, else
        :data:`DEFAULT_RESIDUAL_LENGTH`; it needs a curve law and the normal likelihood.
        """
        raw = self.to_dict()
        raw["likelihood"].pop("residual_length", None)
        raw["likelihood"]["residual"] = residual
        if residual != "iid":
            own = self.likelihood.residual_length
            raw["likelihood"]["residual_length"] = (own.to_dict() if own is not None
                                                    else dict(DEFAULT_RESIDUAL_LENGTH))
        return ModelSpec.from_dict(raw, where=f"model {self.name!r} with residual {residual!r}")

    def with_run_length_term(self, term: str) -> ModelSpec:
        """The same curve model with another run-length term (:data:`RUN_LENGTH_TERMS`)."""
        raw = self.to_dict()
        raw["likelihood"]["run_length_term"] = term
        return ModelSpec.from_dict(raw, where=f"model {self.name!r} with run-length term "
                                              f"{term!r}")

    def with_curve_offsets(self, offsets: str) -> ModelSpec:
        """The same curve model with other whole-curve offsets (:data:`CURVE_OFFSETS`).

        ``curve``: one per curve; ``none``: without; ``run_length``: offsets whose mean
        follows the log schedule length.
        """
        raw = self.to_dict()
        raw["likelihood"]["curve_offsets"] = offsets
        return ModelSpec.from_dict(raw, where=f"model {self.name!r} with curve offsets "
                                              f"{offsets!r}")


def _parse_likelihood(raw: Any, where: str) -> Likelihood:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: [likelihood] must be a table")
    family = raw.get("family", "studentt")
    if family not in LIKELIHOODS:
        raise SpecError(f"{where}: likelihood.family must be one of {', '.join(LIKELIHOODS)}; "
                        f"got {family!r}")
    sigma = Prior.parse(raw.get("sigma", {"dist": "HalfNormal", "sigma": 0.05}),
                        f"{where}: likelihood.sigma")
    nu = None
    if family == "studentt":
        nu = Prior.parse(raw.get("nu", {"dist": "Gamma", "alpha": 2.0, "beta": 0.1}),
                         f"{where}: likelihood.nu")
    residual = raw.get("residual", "iid")
    if residual not in RESIDUALS:
        raise SpecError(f"{where}: likelihood.residual must be one of {', '.join(RESIDUALS)}; "
                        f"got {residual!r}")
    length = None
    if residual != "iid":
        if family != "normal":
            raise SpecError(f"{where}: likelihood.residual = {residual!r} needs "
                            f"family = \"normal\", got {family!r}")
        length = Prior.parse(raw.get("residual_length", DEFAULT_RESIDUAL_LENGTH),
                             f"{where}: likelihood.residual_length")
    elif "residual_length" in raw:
        raise SpecError(f"{where}: likelihood.residual_length is only read with "
                        "residual = \"ou\"")
    offsets = raw.get("curve_offsets", "curve")
    if offsets not in CURVE_OFFSETS:
        raise SpecError(f"{where}: likelihood.curve_offsets must be one of "
                        f"{', '.join(CURVE_OFFSETS)}; got {offsets!r}")
    term = raw.get("run_length_term", "none")
    if term not in RUN_LENGTH_TERMS:
        raise SpecError(f"{where}: likelihood.run_length_term must be one of "
                        f"{', '.join(RUN_LENGTH_TERMS)}; got {term!r}")
    return Likelihood(family=family, sigma=sigma, nu=nu, residual=residual,
                      residual_length=length, curve_offsets=offsets, run_length_term=term)


def _parse_hierarchy(raw: Any, params: tuple[str, ...], where: str) -> Hierarchy:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: [hierarchy] must be a table")
    varying = tuple(raw.get("varying", ()))
    bad = [p for p in varying if p not in params]
    if bad:
        raise SpecError(f"{where}: hierarchy.varying names {bad}, not parameters of the law "
                        f"({', '.join(params)})")
    tau = Prior.parse(raw.get("tau", {"dist": "HalfNormal", "sigma": 0.1}),
                      f"{where}: hierarchy.tau")
    param = raw.get("parameterization", "auto")
    if param not in PARAMETERIZATIONS:
        raise SpecError(f"{where}: hierarchy.parameterization must be one of "
                        f"{', '.join(PARAMETERIZATIONS)}; got {param!r}")
    return Hierarchy(varying=varying, tau=tau, parameterization=param)


def available_models() -> list[str]:
    """Names of the specs shipped in ``models/``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def load_spec(name_or_path: str | os.PathLike[str] | ModelSpec) -> ModelSpec:
    """A spec by shipped name (``"chinchilla"``), by path to a TOML file, or passed through.

    Parameters
    ----------
    name_or_path : str, path or ModelSpec
        A name from :func:`available_models`, a path to a spec TOML file, or a spec.

    Returns
    -------
    ModelSpec
        The checked spec (law, priors, hierarchy, likelihood).
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        return ModelSpec.from_toml(path)
    shipped = MODELS_DIR / f"{text}.toml"
    if shipped.exists():
        return ModelSpec.from_toml(shipped)
    close = difflib.get_close_matches(text, available_models(), n=2)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise SpecError(f"unknown model {text!r}{hint} (shipped: {', '.join(available_models())})")
