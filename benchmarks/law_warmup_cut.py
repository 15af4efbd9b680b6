"""MAP + Laplace screen of a warm-up cut that does not depend on run length.

Session 13 of issue 16, round 2, criterion ``benchmarks/CRITERIA_s13_i16.md`` addendum 2.
Today's rule keeps checkpoints at ``steps >= 0.1 x last step`` of each run; the candidate
replaces it by ``steps >= m x warmup_steps`` (``m`` in :data:`GRID`, chosen per set by
leave-one-set-out). Rows: ``none x curve`` (today's default law) and ``area length x curve``
(round 1's term), each with every cut, and the reference ``none x run_length`` (10% rule).
Every row is scored on the same held-out checkpoints: those today's rule keeps at or after
step ``max(GRID) x warm-up``. MAP search and Laplace bands: ``law_run_length.map_cell``.

Run: ``nice -n 19 python benchmarks/law_warmup_cut.py`` (one JSON per cell and set in
``results/residual_cache/``, a killed run resumes); writes ``results/law_warmup_cut.md``.
``--nuts`` first adds an informational NUTS check (not the criteria's step B: no row passed
step A) of today's law with the LOSO cut ``m = 1`` on mis1-3, scored on the same held-out
checkpoints (library thinning, ``bench_schedule.NUTS``, seed ``SEED + top``, ``retries=1``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from bench_schedule import MISFITTING_SCHEDULE, NUTS, SEED, misfitting_tables
from law_run_length import criterion, map_cell
from residual_candidates import SETS

warnings.simplefilter("ignore")
GRID = (1, 4, 6, 8)
WARMUP = float(MISFITTING_SCHEDULE["warmup_steps"])
ROWS = (("none", "curve"), ("area", "curve"))
REFERENCE = ("none", "run_length", "10%")
HERE = Path(__file__).resolve().parent
CACHE = HERE / "results" / "residual_cache"
LABEL = {"none": "none", "area": "area length"}


def cut_tables(name: str, cut: str):
    """(model, train, test) of one (Mis)Fitting set under a cut ("10%" or "m<k>")."""
    load = {} if cut == "10%" else {"warmup_fraction": 0.0, "min_steps": int(cut[1:]) * WARMUP}
    train, _ = misfitting_tables(int(name[-1]), **load)
    _, test = misfitting_tables(int(name[-1]))
    test = test.subset(test.frame["steps"].to_numpy(float) >= max(GRID) * WARMUP)
    return "dynamics_schedule_fixed_b", train, test


def _file(name: str, cell: tuple[str, str, str]) -> Path:
    if not name.startswith("mis"):   # no warm-up, first checkpoint at step 2,385: round 1's
        return CACHE / f"law_rl_{name}_{cell[0]}_{cell[1]}.json"
    return CACHE / f"law_cut_{name}_{cell[0]}_{cell[1]}_{cell[2].replace('%', 'pct')}.json"


def loso(res: dict, row: tuple[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Each set scored at the ``m`` whose criterion over the other sets is lowest."""
    out, chosen = {}, {}
    for s in SETS:
        crit = {m: criterion({o: res[(*row, f"m{m}")][o] for o in SETS if o != s}) for m in GRID}
        m = min(GRID, key=lambda k: (round(crit[k], 6), k))
        chosen[s], out[s] = m, res[(*row, f"m{m}")][s]
    return out, chosen


def nuts_check() -> dict[str, dict[str, Any]]:
    """NUTS fits of today's law with the m = 1 cut on mis1-3 (cached), pooled scores."""
    from bayes_scaling.evaluate.curve_backtest import score_curves  # lazy: NUTS only here
    from bayes_scaling.fitting.dynamics import fit_dynamics  # lazy: NUTS only here

    out = {}
    for top in (1, 2, 3):
        path = CACHE / f"law_cut_nuts_mis{top}_none_curve_m1.json"
        if not path.exists():
            model, train, test = cut_tables(f"mis{top}", "m1")
            fit = fit_dynamics(model, train, random_seed=SEED + top, retries=1, **NUTS)
            _, _, pooled = score_curves(fit, test, random_seed=SEED + top)
            d = fit.diagnostics
            path.write_text(json.dumps({**pooled, "passed": bool(d.passed),
                                        "max_rhat": float(d.max_rhat),
                                        "divergences": int(d.divergences),
                                        "seconds": float(fit.meta["seconds"])}, default=float))
            print(top, path.read_text(), flush=True)
        out[f"mis{top}"] = json.loads(path.read_text())
    return out


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    nuts = nuts_check() if "--nuts" in sys.argv[1:] else {}
    cells = [REFERENCE] + [(*r, c) for r in ROWS for c in ("10%", *(f"m{m}" for m in GRID))]
    res: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {c: {} for c in cells}
    for name in SETS:
        for cell in cells:
            path = _file(name, cell)
            if not path.exists():
                out = map_cell(*cut_tables(name, cell[2]), cell[0], cell[1])
                path.write_text(json.dumps(out))
                print(name, cell, {k: v for k, v in out.items() if k != "train_within_sd"},
                      flush=True)
            res[cell][name] = json.loads(path.read_text())
    ref = res[REFERENCE]
    crit_ref = criterion(ref)

    def fmt(rows):
        return " | ".join(f"{r['err']:.2f} / {r['c90']:.0%} / {r['c50']:.0%}"
                          for r in rows.values())

    def guard(rows):
        return all(rows[s]["err"] <= ref[s]["err"] + 0.10 for s in SETS)

    lines = ["# A warm-up cut independent of run length: MAP + Laplace screen", "",
             "`benchmarks/law_warmup_cut.py` (session 13 round 2, `benchmarks/CRITERIA_s13_i16.md`"
             " addendum 2). Cut `10%`: today's rule (`steps >= 0.1 x last step`); `m k`: "
             f"`steps >= k x warm-up` ({WARMUP:g} steps on (Mis)Fitting), no fraction rule. "
             "Each cell at its MAP; median abs % error / 90% / 50% coverage of the Laplace "
             "predictive bands on the same held-out checkpoints for every row (today's rule, "
             f"steps >= {max(GRID) * WARMUP:g}). gem and gemhalf have no warm-up and start at "
             "step 2,385: every cut leaves them as round 1's cells.", "",
             f"| term | offsets | cut | {' | '.join(SETS)} | criterion | guard |",
             f"|---|---|---|{'---|' * len(SETS)}---|---|"]
    for cell in cells:
        rows = res[cell]
        g = "reference" if cell == REFERENCE else ("yes" if guard(rows) else "no")
        lines.append(f"| {LABEL[cell[0]]} | {cell[1]} | {cell[2]} | {fmt(rows)} | "
                     f"{criterion(rows):.3f} | {g} |")
    lines += ["", "Leave-one-set-out rows (each set at the `m` picked on the other four):", "",
              f"| term | offsets | m per set | {' | '.join(SETS)} | criterion | guard | passes |",
              f"|---|---|---|{'---|' * len(SETS)}---|---|---|"]
    passing = []
    for row in ROWS:
        rows, chosen = loso(res, row)
        ok = guard(rows) and criterion(rows) < crit_ref
        if ok:
            passing.append((criterion(rows), row))
        lines.append(f"| {LABEL[row[0]]} | {row[1]} | "
                     f"{', '.join(str(chosen[s]) for s in SETS)} | {fmt(rows)} | "
                     f"{criterion(rows):.3f} | {'yes' if guard(rows) else 'no'} | "
                     f"{'yes' if ok else 'no'} |")
    lengths = list(res[("none", "curve", "10%")]["mis1"]["train_within_sd"])
    lines += ["", "Within-curve residual sd of the mis1 training curves by schedule length "
              "(% of loss) and MAP `sigma` / `sigma_curve` (%):", "",
              f"| term | offsets | cut | {' | '.join(lengths)} | sigma | sigma_curve |",
              f"|---|---|---|{'---|' * len(lengths)}---|---|"]
    for cell in cells:
        r = res[cell]["mis1"]
        w = r["train_within_sd"]
        lines.append(f"| {LABEL[cell[0]]} | {cell[1]} | {cell[2]} | "
                     + " | ".join(f"{w[t]:.2f}" if t in w else "-" for t in lengths)
                     + f" | {100 * r['sigma']:.2f} | {100 * r['sigma_curve']:.2f} |")
    if nuts:
        lines += ["", "Informational NUTS check (not step B: no row passed), today's law, curve "
                  "offsets, cut m = 1, same held-out checkpoints: median abs % error / 90% / 50% "
                  "coverage (gate):", "", "| set | error | 90% | 50% | gate |",
                  "|---|---|---|---|---|"]
        lines += [f"| {s} | {r['median_abs_pct_error']:.2f} | {r['coverage_90']:.0%} | "
                  f"{r['coverage_50']:.0%} | {'passed' if r['passed'] else 'FAILED'} (r-hat "
                  f"{r['max_rhat']:.3f}, {r['divergences']} div) |" for s, r in nuts.items()]
    best = min(passing)[1] if passing else None
    lines += ["", "Pick by the stated rule: **" + (
        f"{LABEL[best[0]]} x {best[1]} offsets with the LOSO warm-up cut" if best else "none")
        + f"** (reference criterion {crit_ref:.3f}).", "",
        "*Regenerate: `nice -n 19 .venv/bin/python benchmarks/law_warmup_cut.py` "
        "(cached in `results/residual_cache/law_cut_*.json`)*"]
    (HERE / "results" / "law_warmup_cut.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
