"""Score contrast-calibration candidates under the gate of ``benchmarks/CRITERIA_s10_i17.md``.

The gate suite (:mod:`contrast_gate`: 80 synthetic ladders, 2-8 groups, offset / converging /
diverging / mixed gaps, held-out observed gaps at 4x and 32x the top budget), its validity check
on planted faults of the oracle band (G0), each candidate's non-inferiority and calibration
parts (G1-G3), and the real-set part (R1) from the per-decision P(B better) that
``bench_contrast_weights.py`` wrote (``results/contrast_weights.csv``). The new candidate
``scale_loso`` (the default band's spread times ``k``, ``k`` learned leave-one-set-out over the
four sets) is scored here too. Writes ``results/contrast_gate.md`` and ``.csv``.

Run: ``PYTHONPATH=. nice -n 19 python benchmarks/bench_contrast_gate.py --cache .fits/gate``
(each ladder's records are cached there; a killed run resumes).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contrast_gate as G

from bayes_scaling.files import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
N_LADDERS = 80
GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
MARGIN_POOLED, MARGIN_CLASS, TOL = 0.005, 0.01, 0.02
#: R2, synthetic anchored 90% multiplier coverage from the full bench (``bench_contrast.py``):
#: contrast.md (default), contrast_decay.md, contrast_relative.md; None: not measured
MULTIPLIER_COVERAGE = {"zero": 0.937, "decay": 0.937, "rel": 0.921, "scale_loso": None}
BENCH = {"zero": "p_zero", "decay": "p_zero_decay", "rel": "p_zero_rel"}
CANDS = ("decay", "rel", "scale_loso")


def records(n: int, cache: Path) -> pd.DataFrame:
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = cache / f"gate_{i}.pkl"
        if not path.exists():
            path.write_bytes(pickle.dumps(G.score_ladder(i)))
            print(f"ladder {i} done", flush=True)
        rows += pickle.loads(path.read_bytes())
    return pd.DataFrame(rows)


def gate(frame: pd.DataFrame, cand: str, ref: str) -> dict:
    """G1-G3 for ``cand`` against ``ref`` on the gate suite ``frame``."""
    q = float(np.quantile(G.ladder_bootstrap(frame, cand, ref), 0.95))
    per_class = {k: float(np.quantile(G.ladder_bootstrap(sub, cand, ref), 0.95))
                 for k, sub in frame.groupby("kind")}
    mc, mr = G.metrics(frame, cand), G.metrics(frame, ref)
    g3 = (abs(mc["cov90"] - 0.9) <= abs(mr["cov90"] - 0.9) + TOL
          and mc["calgap"] <= mr["calgap"] + TOL)
    out = {"cand": cand, "ref": ref, "dbrier_q95": q, "G1": q <= MARGIN_POOLED,
           "worst_class_q95": max(per_class.values()),
           "G2": all(v <= MARGIN_CLASS for v in per_class.values()), "G3": bool(g3)}
    out["pass"] = out["G1"] and out["G2"] and out["G3"]
    return out


def rescale(p: np.ndarray, k: float, n: int = 1200) -> np.ndarray:
    """P(B better) of a Gaussian band whose spread is ``k`` times as wide."""
    p = np.clip(np.asarray(p, float), 0.5 / n, 1.0 - 0.5 / n)
    return norm.cdf(norm.ppf(p) / k)


def bench_scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    acc = float(np.mean((p > 0.5) == y))
    conf = float(np.mean(np.maximum(p, 1.0 - p)))
    return {"brier": float(np.mean((p - y) ** 2)), "acc": acc, "conf": conf,
            "calgap": abs(conf - acc)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(".fits/gate"))
    ap.add_argument("--ladders", type=int, default=N_LADDERS)
    args = ap.parse_args()
    frame = records(args.ladders, args.cache)
    bench = pd.read_csv(RESULTS / "contrast_weights.csv")
    bench["y"] = bench["y"].astype(bool)
    sets = ["gate", "synthetic", "porian", "gemstones"]

    def brier_k(s: str, k: float) -> float:
        if s == "gate":
            col = "zero" if k == 1.0 else f"zero_s{k:g}"
            return G.metrics(frame, col)["brier"]
        b = bench[bench["set"] == s]
        return bench_scores(rescale(b["p_zero"], k), b["y"].to_numpy())["brier"]

    table = {s: {k: brier_k(s, k) for k in GRID} for s in sets}
    k_loso = {s: min(GRID, key=lambda k, s=s: np.mean([table[t][k] for t in sets if t != s]))
              for s in sets}
    col = "zero" if k_loso["gate"] == 1.0 else f"zero_s{k_loso['gate']:g}"
    for f in ("mean", "sd", "p", "lo", "hi"):
        frame[f"scale_loso_{f}"] = frame[f"{col}_{f}"]
    # G0: validity; then each candidate
    g0 = [gate(frame, f, "oracle") for f in ("oracle_x2", "oracle_x0.5", "oracle_x1.5",
                                             "oracle_x0.67")]
    valid = not (g0[0]["pass"] or g0[1]["pass"])
    verdicts = [gate(frame, c, "zero") for c in (*CANDS, "zero_x2", "zero_x0.5")]
    # R1: the three bench sets, each weighing the same
    per_set, rows = {}, []
    for s in sets[1:]:
        b = bench[bench["set"] == s]
        y = b["y"].to_numpy()
        ps = {n: b[c].to_numpy() for n, c in BENCH.items()}
        ps["scale_loso"] = rescale(b["p_zero"], k_loso[s])
        for n, p in ps.items():
            per_set[(s, n)] = bench_scores(p, y)
            rows.append({"set": s, "band": n, "n": len(b), **per_set[(s, n)]})
    for n in ("zero", *CANDS):
        rows.append({"set": "mean over bench sets", "band": n,
                     **{m: float(np.mean([per_set[(s, n)][m] for s in sets[1:]]))
                        for m in ("brier", "acc", "conf", "calgap")}})
    real = pd.DataFrame(rows)
    mean = real[real["set"] == "mean over bench sets"].set_index("band")
    adopt = []
    for v in verdicts[:len(CANDS)]:
        c = v["cand"]
        v["R1"] = bool(mean.loc[c, "brier"] < mean.loc["zero", "brier"]
                       and mean.loc[c, "calgap"] < mean.loc["zero", "calgap"])
        cov = MULTIPLIER_COVERAGE[c]
        v["R2"] = cov is not None and 0.85 <= cov <= 0.95
        v["adopt_ok"] = valid and v["pass"] and v["R1"] and v["R2"]
        if v["adopt_ok"]:
            adopt.append(c)
    winner = min(adopt, key=lambda c: G.metrics(frame, c)["brier"]) if adopt else None
    write(frame, real, g0, valid, verdicts, k_loso, table, winner)


def _md(df: pd.DataFrame) -> str:
    """A pipe table (numbers to 4 significant digits)."""
    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    rows = [" | ".join(map(str, df.columns)), " | ".join("---" for _ in df.columns)]
    rows += [" | ".join(cell(v) for v in r) for r in df.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


def write(frame, real, g0, valid, verdicts, k_loso, table, winner) -> None:
    bands = ["oracle", "zero", "decay", "rel", "scale_loso", "zero_x2", "zero_x0.5",
             "oracle_x2", "oracle_x0.5"]
    pooled = pd.DataFrame([{"band": b, "kind": "all", "n": len(frame), **G.metrics(frame, b)}
                           for b in bands])
    per = pd.DataFrame([{"band": b, "kind": k, "n": len(sub), **G.metrics(sub, b)}
                        for k, sub in frame.groupby("kind") for b in bands[:5]])
    both = pd.concat([pooled, per], ignore_index=True)
    both.to_csv(RESULTS / "contrast_gate.csv", index=False, float_format="%.5g")
    rel = []
    for b in ("oracle", "zero", "decay", "rel", "scale_loso"):
        p, y = frame[f"{b}_p"].to_numpy(), frame["b_better"].to_numpy()
        for lo in np.arange(0.0, 1.0, 0.2):
            m = (p >= lo) & (p < lo + 0.2 + 1e-12 * (lo >= 0.8))
            rel.append({"band": b, "P bin": f"{lo:.1f}-{lo + 0.2:.1f}", "n": int(m.sum()),
                        "mean P": float(p[m].mean()) if m.any() else np.nan,
                        "share B better": float(y[m].mean()) if m.any() else np.nan})
    text = [
        "## Contrasts: the calibration gate (issue 17, session 10)", "",
        "`benchmarks/bench_contrast_gate.py`, under the criterion committed before scoring "
        "(`benchmarks/CRITERIA_s10_i17.md`; the candidates `decay` and `rel` had been scored "
        "under the old gate in sessions 8-9). Suite (`benchmarks/contrast_gate.py`): "
        f"{frame['ladder'].nunique()} synthetic isoFLOP ladders (2-8 groups; offset, converging, "
        "diverging, mixed recipe gaps), the library's default anchored predictive band of "
        "L_B - L_A from a point-fit stand-in posterior, scored against 5 held-out observed gaps "
        f"per pair at 4x and 32x the top budget ({len(frame)} records). `oracle`: the exact "
        "predictive distribution of the observed gap; `*_x2`, `*_x0.5`: spread scaled about the "
        "mean (planted faults). `zero`: the flat drift, the default when this was scored "
        "(the switches are set explicitly, so the figures do not move with the default). "
        "Brier and accuracy of P(B better) against the observed sign; "
        "`conf`: mean max(P, 1-P); `calgap`: |conf - acc|; `cov90`: observed gaps inside the "
        "90% band.", "", "Pooled and per class:", "", _md(both), "",
        "G0 (validity: G1-G3 with the oracle as reference must reject `oracle_x2` and "
        f"`oracle_x0.5`): **{'valid' if valid else 'NOT valid'}**. `dbrier_q95`: 95th "
        "percentile of 2000 ladder-bootstrap Brier differences (candidate - reference):", "",
        _md(pd.DataFrame(g0)), "", "Candidates against the default `zero` (G1: dbrier_q95 <= "
        f"{MARGIN_POOLED}; G2: every class's <= {MARGIN_CLASS}; G3: |cov90 - 0.9| and calgap "
        f"no worse than the default's + {TOL}; R1: mean Brier and mean calgap over the three "
        "bench sets below the default's; R2: synthetic 90% multiplier coverage 85-95%, from "
        "the full bench, not measured for `scale_loso`):", "", _md(pd.DataFrame(verdicts)), "",
        f"**Adopted: {winner or 'none'}.**", "",
        "`scale_loso`: k per left-out set (the grid value minimising the mean Brier over the "
        f"other three sets): {', '.join(f'{s} {k:g}' for s, k in k_loso.items())}. Brier of "
        "the default band with its spread times k, per set:", "",
        _md(pd.DataFrame(table).rename_axis("k").reset_index()), "",
        "Bench sets (`results/contrast_weights.csv`: synthetic against the noise-free sign at "
        "100x, Porian and Gemstones against held-out runs), per set and mean over sets:", "",
        _md(real), "", "Reliability on the gate suite (P(B better) bins):", "",
        _md(pd.DataFrame(rel)), ""]
    atomic_write_text(RESULTS / "contrast_gate.md", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
