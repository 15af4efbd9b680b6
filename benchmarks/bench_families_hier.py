"""Hierarchical (partially pooled) stacking of the law families, scored leave-one-ladder-out
on the cached held-out rows: the candidates, protocol and adoption rule are fixed in
``benchmarks/CRITERIA_s13_i19.md`` (H1 committed before this script was first run; H2, the
addendum, before any H2 figure was computed).

Each ladder's weights are the mode of ``softmax(mu + B u)``, ``u ~ Normal(0, sigma^2 I)``, under
its own inner rows' stacking objective (:mod:`bayes_scaling.evaluate.hierstack`); ``mu`` is the
centred log of the cross-ladder weights, ``sigma`` empirical Bayes on the other real ladders:
H1 by the Laplace marginal stacking likelihood of their inner rows, H2 by the one-budget-forward
stacking score (weights learned on the earlier origin's rows, scored on the later origin's).

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
from bayes_scaling.evaluate.stacking import forward_split
from benchmarks.bench_families_evidence import (
    RESULTS,
    _rows,
    load,
    origins,
    parts,
    real_pooled,
    score,
)
from benchmarks.bench_families_shrink import FAMILIES, _md, shrunk

NOW = "product now (k = 100)"
HIER = "hierarchical (LOLO)"
HIER2 = "H2: forward sigma (LOLO)"
OWN = "own always (k = 0)"
#: (Post hoc, not part of the registered rule) multiples of each ladder's LOLO sigma.
SIGMA_SCALES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)


def populations(lad: dict[str, dict[str, Any]], forward: bool = False
                ) -> dict[str, tuple[np.ndarray, float]]:
    """Each ladder's population ``(mu, sigma)``, learned without it (CRITERIA_s13_i19);
    ``forward``: H2's ``sigma``, by the one-budget-forward stacking score (the addendum)."""
    real = {n: d for n, d in lad.items() if d["set"] == "real"}
    raw = {n: d["r"] for n, d in real.items()}
    rows = {n: x for n, d in real.items() if (x := _rows(d["r"])) is not None}
    if forward:
        split = {n: forward_split(*origins(real[n]["train"])) for n in rows}
        ev = {n: (x[split[n][0]], x[split[n][1]]) for n, x in rows.items()}
    else:
        ev = {n: (x, None) for n, x in rows.items()}

    def sigma(names: list[str], mu: np.ndarray) -> float:
        return fit_sigma([ev[m][0] for m in names], mu,
                         [ev[m][1] for m in names] if forward else None)

    out = {}
    for name in real:
        mu = population_mu(shrunk(raw, name, np.inf, set()))
        out[name] = (mu, sigma([m for m in rows if m != name], mu))
    shipped = next(d["cross"] for d in lad.values() if d["set"] != "real")
    mu = population_mu(shipped)
    sig = sigma(list(rows), mu)
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
    pop2 = populations(lad, forward=True)
    w = {HIER: {}, HIER2: {}, NOW: {}, OWN: {}}
    for n, d in lad.items():
        rows = _rows(d["r"])
        rows = np.zeros((0, len(FAMILIES))) if rows is None else rows
        w[HIER][n] = hier_weights(rows, *pop[n])
        w[HIER2][n] = hier_weights(rows, *pop2[n])
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
    pn, sn = real_rows[3], summ[2]
    assert sn["rule"] == NOW and pn["rule"] == NOW

    def checks(i: int) -> dict[str, bool]:
        ph, sh = real_rows[i + 1], summ[i]
        return {"(a) real": ph["reduction %"] >= 25 and 0.85 <= ph["coverage 90"] <= 0.95
                and ph["interval score 90"] < real_rows[0]["interval score 90"],
                "(b) synthetic no worse": all(sh[f"synthetic {f}"] <= sn[f"synthetic {f}"]
                                              + 1e-12 for f in FAMILIES),
                "(c) J lower": sh["J"] < sn["J"]}

    ok, ok2 = checks(0), checks(1)
    adopt, adopt2 = all(ok.values()), all(ok2.values())

    def fmt(v: np.ndarray) -> str:
        return " / ".join(f"{x:.2f}" for x in v)

    per = []
    for n, d in lad.items():
        e, e0, e1, e2 = sc[HIER][n], sc[NOW][n], sc[OWN][n], sc[HIER2][n]
        per.append({"ladder": n, "set": d["set"], "sigma": pop[n][1], "sigma H2": pop2[n][1],
                    "own w": "-" if d["own"] is None else fmt(d["own"]),
                    "hier w": fmt(w[HIER][n]), "H2 w": fmt(w[HIER2][n]),
                    "now w": fmt(w[NOW][n]),
                    "ratio": float(np.median(e["err"]) / np.median(e["ref"])),
                    "ratio H2": float(np.median(e2["err"]) / np.median(e2["ref"])),
                    "ratio now": float(np.median(e0["err"]) / np.median(e0["ref"])),
                    "ratio own": float(np.median(e1["err"]) / np.median(e1["ref"])),
                    "cov90": float(e["cov90"].mean()) if "cov90" in e else float("nan"),
                    "cov90 H2": float(e2["cov90"].mean()) if "cov90" in e2 else float("nan"),
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
             "**Decision, H1 (pre-registered rule): " + ("adopt" if adopt else "do not adopt")
             + "** (" + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in ok.items())
             + ").", "",
             "**Decision, H2 (same rule, addendum registered before H2 was computed): "
             + ("adopt" if adopt2 else "do not adopt") + "** ("
             + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in ok2.items()) + ").", "",
             "## Per ladder", "", "'sigma', 'hier w', 'ratio': H1 (round 1); 'sigma H2', "
             "'H2 w', 'ratio H2': H2 (forward sigma).", "", _md(pd.DataFrame(per)), "",
             "## Post hoc (added after the figures above were seen; not part of the rule, "
             "not adopted)", "", "Each ladder's leave-one-ladder-out `sigma` multiplied by a "
             "constant, all 30 ladders (in-sample in the constant):", "",
             _md(post_hoc(lad, pop)), "",
             "Regenerate: `BAYES_SCALING_DATA=../shared/data nice -n 19 .venv/bin/python "
             "benchmarks/bench_families_hier.py` (no fitting).", ""]
    (RESULTS / "families_hier.md").write_text("\n".join(lines))
    print("\n".join(lines))
    (RESULTS / "families_hier.json").write_text(json.dumps(
        {"adopt": adopt, "checks": ok, "adopt H2": adopt2, "checks H2": ok2,
         "summary": summ, "real": real_rows,
         "per_ladder": per}, default=float, indent=1))


if __name__ == "__main__":
    main()
