"""Provenance: the data files, the run table, every fit, the seed, the versions, the date."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from bayes_scaling.fitting.result import package_version, versions
from bayes_scaling.report.blocks import Block, Num, h2, para, table
from bayes_scaling.report.common import sha256_of, shown_path
from bayes_scaling.report.context import Context, Section


def numbers(ctx: Context) -> dict[str, Any]:
    """``provenance``: where every input came from."""
    plan, runs = ctx.plan, ctx.runs
    models = []
    for fam, f in ctx.fits.items():
        models.append({"family": fam, "model": f.spec.name, "law": f.spec.law,
                       "spec_sha256": f.spec.sha256(), "data_sha256": f.runs.fingerprint(),
                       "method": f.method, "seed": f.meta.get("seed"),
                       "backend": f.diagnostics.backend, "created": f.meta.get("created"),
                       "fit_versions": f.meta.get("versions"), **dict(ctx.fit_prov[fam])})
    return {"provenance": {
        "proposal_file": shown_path(plan.path),
        "proposal_sha256": sha256_of(plan.path) if plan.path else None,
        "data_files": list(ctx.files),
        "runs": {"n_runs": runs.n_runs, "groups": list(runs.group_names),
                 "fingerprint": runs.fingerprint(), "param_count": runs.param_count,
                 "loader": dict(plan.runs.loader)},
        "models": models, "seed": ctx.seed,
        "versions": versions(), "bayes_scaling_version": package_version(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }}


def blocks(risk: Mapping[str, Any]) -> list[Block]:
    """The data files, the run table, the fits and the proposal."""
    pv = risk["provenance"]
    files = [[[f["entry"]], [f["path"]], [f["sha256"]],
              [Num(("provenance", "data_files", i, "rows_used"), "int")]]
             for i, f in enumerate(pv["data_files"])]
    models = [[[m["family"]], [m["spec_sha256"][:16]], [m["data_sha256"][:16]],
               [str(m.get("file") or "(given)")],
               ["reused" if m.get("reused") else "fitted now"],
               [str(m.get("seed"))], [str(m.get("backend"))]] for m in pv["models"]]
    vers = ", ".join(f"{k} {v}" for k, v in pv["versions"].items())
    return [h2("Provenance"),
            table(["data", "file", "sha256", "runs used"], files),
            para(f"Run table: {pv['runs']['n_runs']} runs, groups "
               f"{', '.join(pv['runs']['groups'])}, N counts {pv['runs']['param_count']} "
               f"parameters, fingerprint {pv['runs']['fingerprint']}."),
            table(["family", "spec sha256", "data sha256", "fit file", "fit", "seed",
                    "backend"], models),
            para(f"Proposal {pv['proposal_file'] or '(in memory)'}"
               + (f" (sha256 {pv['proposal_sha256']})" if pv["proposal_sha256"] else "")
               + f"; seed {pv['seed']}; generated {pv['date']}; versions: {vers}.")]


SECTION = Section(keys=("provenance",), numbers=numbers, blocks=blocks)
