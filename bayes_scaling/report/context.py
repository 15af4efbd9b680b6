"""What a report section is, and what its numbers function is given.

A :class:`Section` is a pair: ``numbers(ctx)`` gives the section's entries of ``report.json``
(the top-level keys named in ``keys``) and ``blocks(risk)`` gives what the page and the
Markdown show of them (:mod:`bayes_scaling.report.blocks`). The sections live in
:mod:`bayes_scaling.report.sections`, one module each, listed once in
:data:`bayes_scaling.report.registry.SECTIONS`.

A :class:`Context` carries the inputs every section may use (the plan, the runs, the fits, the
seed, the saved-fit folder) and computes the entries on demand: a section that needs another
section's entry asks ``ctx.entry(key)``, which runs that section's numbers once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_scaling.data.runs import RunTable
from bayes_scaling.files import atomic_write_text
from bayes_scaling.fitting.result import PACKAGE, ScalingFit, versions
from bayes_scaling.report.blocks import Block
from bayes_scaling.report.common import source_digest
from bayes_scaling.report.proposal import Proposal
from bayes_scaling.types import ProgressFn


@dataclass(frozen=True)
class Section:
    """One section of the risk report: its entries of ``report.json`` and its blocks.

    Attributes
    ----------
    keys
        The top-level keys of ``report.json`` that ``numbers`` returns (each owned by one
        section).
    numbers
        ``numbers(ctx) -> {key: entry}`` for every key of ``keys``.
    blocks
        ``blocks(risk) -> [Block, ...]``: what the page and the Markdown show (non-empty).
    """

    keys: tuple[str, ...]
    numbers: Callable[[Context], Mapping[str, Any]]
    blocks: Callable[[Mapping[str, Any]], list[Block]]


@dataclass
class Context:
    """The inputs of every section's numbers, and the entries computed so far.

    Attributes
    ----------
    plan
        The proposal with (N, D) set (a FLOP budget alone already split).
    runs, files
        The proposal's run table and, per input file, its path, sha256 and rows used.
    group
        The group the plan is predicted for.
    fits, fit_prov
        The fit of each law family (in the proposal's order) and where it came from.
    seed
        Seed of every random step of the queries.
    cache
        Folder of saved fits (``None``: no caching).
    tell
        Progress callback.
    sections
        The sections, to find the one that owns a key.
    saved_weights
        The weights of the fit file the proposal names (``{"weights": ..., "meta": ...}``):
        the model average uses them instead of stacking anew; ``None``: stack.
    """

    plan: Proposal
    runs: RunTable
    files: list[dict[str, Any]]
    group: str
    fits: dict[str, ScalingFit]
    fit_prov: dict[str, dict[str, Any]]
    seed: int
    cache: Path | None
    tell: ProgressFn
    sections: Sequence[Section]
    saved_weights: Mapping[str, Any] | None = None
    _entries: dict[str, Any] = field(default_factory=dict)

    def entry(self, key: str) -> Any:
        """The entry ``key`` of ``report.json``, computed by its section on first use.

        Parameters
        ----------
        key : str
            A top-level key owned by one of :attr:`sections`.

        Returns
        -------
        Any
            The entry (not yet made JSON-ready).
        """
        if key not in self._entries:
            owners = [s for s in self.sections if key in s.keys]
            if len(owners) != 1:
                raise KeyError(f"report entry {key!r} is owned by {len(owners)} sections")
            got = dict(owners[0].numbers(self))
            if set(got) != set(owners[0].keys):
                raise KeyError(f"a section's numbers gave {sorted(got)}, not its keys "
                               f"{sorted(owners[0].keys)}")
            self._entries.update(got)
        return self._entries[key]

    def kept(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A JSON-ready entry that takes seconds to compute, kept between builds.

        Saved in the fit folder as ``<name>-<digest>.json``, where the digest covers everything
        a section's numbers can depend on: the proposal, the runs, each fit (spec, data, method,
        seed, creation time), the seed, the package version and its code
        (:func:`~bayes_scaling.report.common.source_digest`). Any change computes it again;
        an unreadable file is recomputed and replaced. Without a fit folder it is computed.

        Parameters
        ----------
        name : str
            The entry's file name stem (e.g. ``"comparison"``).
        compute : callable
            ``compute() -> dict``, JSON-ready.
        """
        if self.cache is None:
            return compute()
        key = {"plan": self.plan.to_dict(), "runs": self.runs.fingerprint(),
               "fits": {fam: [f.spec.sha256(), f.runs.fingerprint(), f.method,
                              f.meta.get("seed"), f.meta.get("created")]
                        for fam, f in sorted(self.fits.items())},
               "seed": self.seed, "version": versions().get(PACKAGE), "code": source_digest()}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
        path = self.cache / f"{name}-{digest.hexdigest()[:16]}.json"
        if path.is_file():
            try:
                got = json.loads(path.read_text())
            except (OSError, ValueError):
                got = None
            if isinstance(got, dict):
                self.tell(f"reusing {path.name}")
                return got
        got = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(got))
        return got

    @property
    def n(self) -> float:
        """Planned parameters."""
        return self.plan.n_params  # type: ignore[return-value]

    @property
    def d(self) -> float:
        """Planned training tokens."""
        return self.plan.n_tokens  # type: ignore[return-value]

    @property
    def target(self) -> float:
        """Target loss."""
        return self.plan.target_loss  # type: ignore[return-value]
