"""Hierarchical (partially pooled) stacking of the law families, scored leave-one-ladder-out
on the cached held-out rows: the candidate, protocol and adoption rule are fixed in
``benchmarks/CRITERIA_s13_i19.md`` (committed before this script was first run).

Each ladder's weights are the mode of ``softmax(mu + B u)``, ``u ~ Normal(0, sigma^2 I)``, under
its own inner rows' stacking objective (:mod:`bayes_scaling.evaluate.hierstack`); ``mu`` is the
centred log of the cross-ladder weights, ``sigma`` empirical Bayes on the other real ladders.

Run: ``BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python
benchmarks/bench_families_hier.py`` (no fitting; about a minute). Writes
``benchmarks/results/families_hier.md`` and ``.json``.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.evaluate.hierstack import fit_sigma, hier_weights, population_mu
from benchmarks.bench_families_evidence import RESULTS, _rows, load, parts, real_pooled, score
from benchmarks.bench_families_shrink import FAMILIES, _md, shrunk

NOW = "product now (k = 100)"
HIER = "hierarchical (LOLO)"
OWN = "own always (k = 0)"
#: (Post hoc, not part of the registered rule) multiples of each ladder's LOLO sigma.
SIGMA_SCALES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


def populations(lad: dict[str, dict[str, Any]]) -> dict[str, tuple[np.ndarray, float]]:
    """Each ladder's population ``(mu, sigma)``, learned without it (CRITERIA_s13_i19)."""
    real = {n: d for n, d in lad.items() if d["set"] == "real"}
    raw = {n: d["r"] for n, d in real.items()}
    rows = {n: x for n, d in real.items() if (x := _rows(d["r"])) is not None}
    out = {}
    for name in real:
        mu = population_mu(shrunk(raw, name, np.inf, set()))
        out[name] = (mu, fit_sigma([x for m, x in rows.items() if m != name], mu))
    shipped = next(d["cross"] for d in lad.values() if d["set"] != "real")
    mu = population_mu(shipped)
    sig = fit_sigma(list(rows.values()), mu)
    out.update({n: (mu, sig) for n, d in lad.items() if d["set"] != "real"})
    return out


def post_hoc(lad: dict[str, dict[str, Any]], pop: dict[str, tuple[np.ndarray, float]]
             ) -> pd.DataFrame:
    """(Post hoc) each ladder's LOLO sigma times a constant: the real / synthetic trade-off."""
    out = []
    for c in SIGMA_SCALES:
        s = {}
        for n, d in lad.items():
            rows = _rows(d["r"])
            mu, sig = pop[n]
            s[n] = score(n, d, hier_weights(np.zeros((0, len(FAMILIES))) if rows is None
                                            else rows, mu, c * sig))
        p = parts(s, lad)
        rp = real_pooled({n: e for n, e in s.items() if lad[n]["set"] == "real"})
        out.append({"sigma x": c, "real reduction %": rp["reduction %"],
                    "cov90": rp["coverage 90"], "IS90": rp["interval score 90"],
                    **{f"synthetic {f}": p[f] for f in FAMILIES}, "J": p["J"]})
    return pd.DataFrame(out)


def main() -> None:
    warnings.simplefilter("ignore")
    lad = load()
    pop = populations(lad)
    w = {HIER: {}, NOW: {}, OWN: {}}
    for n, d in lad.items():
        rows = _rows(d["r"])
        mu, sig = pop[n]
        w[HIER][n] = hier_weights(np.zeros((0, len(FAMILIES))) if rows is None else rows,
                                  mu, sig)
        w[NOW][n] = d["product"]
        w[OWN][n] = d["product"] if d["own"] is None else d["own"]
    sc = {lab: {n: score(n, lad[n], ws[n]) for n in lad} for lab, ws in w.items()}
    from benchmarks.bench_families_combine import per_run  # lazy: the reference's scores
    chin = {n: per_run(lad[n]["r"], None, "pool") for n in lad if lad[n]["set"] == "real"}
    real_rows = [{"rule": "Chinchilla alone",
                  **real_pooled({n: {**c, "ref": c["err"]} for n, c in chin.items()})}]
    summ = []
    for lab, s in sc.items():
        real_rows.append({"rule": lab, **real_pooled({n: e for n, e in s.items()
                                                       if lad[n]["set"] == "real"})})
        p = parts(s, lad)
        summ.append({"rule": lab, "R (real err / chinchilla's)": p["real"],
                     **{f"synthetic {f}": p[f] for f in FAMILIES}, "J": p["J"]})
    ph, pn = real_rows[1], real_rows[2]
    sh, sn = summ[0], summ[1]
    ok = {"(a) real": ph["reduction %"] >= 25 and 0.85 <= ph["coverage 90"] <= 0.95
          and ph["interval score 90"] < real_rows[0]["interval score 90"],
          "(b) synthetic no worse": all(sh[f"synthetic {f}"] <= sn[f"synthetic {f}"] + 1e-12
                                        for f in FAMILIES),
          "(c) J lower": sh["J"] < sn["J"]}
    adopt = all(ok.values())

    def fmt(v: np.ndarray) -> str:
        return " / ".join(f"{x:.2f}" for x in v)

    per = []
    for n, d in lad.items():
        e, e0, e1 = sc[HIER][n], sc[NOW][n], sc[OWN][n]
        per.append({"ladder": n, "set": d["set"], "sigma": pop[n][1],
                    "own w": "-" if d["own"] is None else fmt(d["own"]),
                    "hier w": fmt(w[HIER][n]), "now w": fmt(w[NOW][n]),
                    "ratio": float(np.median(e["err"]) / np.median(e["ref"])),
                    "ratio now": float(np.median(e0["err"]) / np.median(e0["ref"])),
                    "ratio own": float(np.median(e1["err"]) / np.median(e1["ref"])),
                    "cov90": float(e["cov90"].mean()) if "cov90" in e else float("nan"),
                    "cov90 now": float(e0["cov90"].mean()) if "cov90" in e0 else float("nan")})
    lines = ["# Hierarchical (partially pooled) stacking, leave-one-ladder-out", "",
             "Candidate, protocol and adoption rule: `benchmarks/CRITERIA_s13_i19.md` "
             "(committed before this was run). Weights in the family order "
             + " / ".join(FAMILIES) + "; 'ratio': the average's median abs % error over the "
             "reference's (Chinchilla's law alone for a real ladder, the true family's own for "
             "a synthetic one).", "",
             "## Joint criterion", "", _md(pd.DataFrame(summ)), "",
             f"## Real ladders, pooled ({pn['n_test']} held-out runs)", "",
             _md(pd.DataFrame(real_rows)), "",
             "**Decision (pre-registered rule): " + ("adopt" if adopt else "do not adopt")
             + "** (" + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in ok.items())
             + ").", "", "## Per ladder", "", _md(pd.DataFrame(per)), "",
             "## Post hoc (added after the figures above were seen; not part of the rule, "
             "not adopted)", "", "Each ladder's leave-one-ladder-out `sigma` multiplied by a "
             "constant, all 30 ladders (in-sample in the constant):", "",
             _md(post_hoc(lad, pop)), "",
             "Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python "
             "benchmarks/bench_families_hier.py` (no fitting).", ""]
    (RESULTS / "families_hier.md").write_text("\n".join(lines))
    print("\n".join(lines))
    (RESULTS / "families_hier.json").write_text(json.dumps(
        {"adopt": adopt, "checks": ok, "summary": summ, "real": real_rows,
         "per_ladder": per}, default=float, indent=1))


if __name__ == "__main__":
    main()
