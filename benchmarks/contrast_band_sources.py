"""Where the width of the anchored difference band comes from (issue 17, session 11; figures in
``benchmarks/CRITERIA_s11_i17.md``).

The default band of ``L_B - L_A`` at a target has four variance sources: the noise floor ``a``,
the flat drift ``s² h``, the relative drift ``r² g² h`` and the spread of ``w`` times the law's
group-specific change ``t² x²``. Each is switched on alone and the band's variance recomputed
from the same draws; each is compared with the oracle (the exact predictive variance of the
observed gap, 4000 simulated slices) and with the honest anchored variance (the oracle's plus
the variance of the anchor, the best-run gap at the top budget, plus the squared true change of
the gap from there to the target).

- ``ladders``: the two-group converging ladders of the power study (``tests/test_anchor.py``'s
  fixture on 5 seed sets of 12), point fits; ``--slice`` with the slice anchor;
- ``gate``: gate ladders (``contrast_gate.py``), per kind and target;
- ``porian``: the cached NUTS fits of ``bench_contrast.py --cache``, against held-out runs, and
  the observed changes of gaps per decade by rolling origin.

Run: ``PYTHONPATH=. BAYES_SCALING_DATA=../shared/data nice -n 19 python
benchmarks/contrast_band_sources.py ladders|gate|porian [--slice] [--top] [--pair] [--cap]
[--scale]
[--cache .fits]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import bench_contrast as bc
import contrast_gate as G
import test_anchor as T

from bayes_scaling.fitting.result import ScalingFit
from bayes_scaling.query import anchor
from bayes_scaling.query.predict import group_theta

SOURCES = ("a", "s2h", "r2g2h", "t2x2")


def parts(cal: anchor.ContrastCalibration) -> dict[str, anchor.ContrastCalibration]:
    """The calibration, and each variance source alone."""
    zero = {"noise_var": 0.0, "drift_var": 0.0, "drift_rel": 0.0, "weight_sd": 0.0,
            "pair_sd": ()}
    keep = {"a": ("noise_var",), "s2h": ("drift_var",), "r2g2h": ("drift_rel",),
            "t2x2": ("weight_sd", "pair_sd")}
    return {"total": cal, **{p: replace(cal, **{k: v for k, v in zero.items() if k not in f})
                             for p, f in keep.items()}}


def band_vars(fit, a, b, cal, log_c, slice_anchor, seeds=(0,), log_ratio=None):
    """Variance and mean of the predictive difference per source: ``{name: (var, mean)}``."""
    th = {g: {k: v[:, None] for k, v in group_theta(fit, g).items()} for g in (a, b)}
    out = {}
    for name, c in parts(cal).items():
        d = np.concatenate([np.exp(p[1]) - np.exp(p[0]) for p in (
            anchor.anchored_log_losses(fit, (a, b), th, log_c, log_ratio, c,
                                       np.random.default_rng(k), beyond="hold",
                                       slice_anchor=slice_anchor)[1] for k in seeds)])
        out[name] = (d.var(axis=0), d.mean(axis=0))
    return out


def ladders(slice_anchor: bool) -> None:
    rows = []
    for rep in range(60):
        rng = np.random.default_rng(100 + rep)
        gap0 = rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.2)
        runs, gap, budgets = T.isoflop_ladder(gap0, rng.normal(0.0, 0.01), seed=rep)
        fit, c_star = T.point_fake_fit(runs, rep), 4.0 * budgets[-1]
        cal = anchor.calibration_from(anchor.calibration_data(fit, slice_anchor=slice_anchor),
                                      "zero")
        v = band_vars(fit, "A", "B", cal, np.log(np.array([[c_star]])), slice_anchor,
                      seeds=range(5))
        ref = T.held_out_gaps(c_star, gap, seed=500000 + rep, n=4000)
        top = T.held_out_gaps(budgets[-1], gap, seed=600000 + rep, n=4000)
        obs = T.held_out_gaps(c_star, gap, seed=1000 + rep)
        rows.append({"set": rep // 12, "oracle": ref.var(), "anchor": top.var(),
                     "trend2": (ref.mean() - top.mean()) ** 2,
                     "med_abs_z": np.abs(obs - v["total"][1][0]) / np.sqrt(v["total"][0][0]),
                     **{s: v[s][0][0] for s in ("total", *SOURCES)}})
    df = pd.DataFrame(rows)
    honest = df["oracle"] + df["anchor"] + df["trend2"]
    print(f"60 two-group converging ladders, slice anchor {slice_anchor}:")
    print(f"  band sd / oracle sd, median {np.sqrt(np.median(df['total'] / df['oracle'])):.2f}; "
          f"honest / oracle {np.sqrt(np.median(honest / df['oracle'])):.2f}; anchor noise "
          f"alone {np.sqrt(np.median((df['oracle'] + df['anchor']) / df['oracle'])):.2f}")
    print(f"  band var / honest var: median {np.median(df['total'] / honest):.2f}, 10-90% "
          f"{np.quantile(df['total'] / honest, 0.1):.2f}-"
          f"{np.quantile(df['total'] / honest, 0.9):.2f}")
    for s in SOURCES:
        share = df[s] / df["total"]
        print(f"  {s}: share of the band, median {share.median():.2f} mean {share.mean():.2f}")
    meds = df.groupby("set")["med_abs_z"].apply(lambda z: np.median(np.concatenate(z.values)))
    print("  median |z| of 20 held-out gaps x 12 ladders, per seed set:", np.round(meds.values, 3))


def gate(ids: list[int]) -> None:
    out = []
    for i in ids:
        spec = G.ladder_spec(i)
        runs = G.ladder_runs(spec, 10_000 + i)
        fit, names = G.point_fit(runs, i), list(runs.group_names)
        cal = anchor.calibration_from(anchor.calibration_data(fit), "zero")
        flops = np.array(G.TARGETS) * G.BUDGETS[-1]
        ref = [G.best_losses(spec, c, 4000, 30_000 + 97 * i + t) for t, c in enumerate(flops)]
        top = G.best_losses(spec, G.BUDGETS[-1], 4000, 77_000 + i)
        for a, b in itertools.combinations(range(len(names)), 2):
            v = band_vars(fit, names[a], names[b], cal, np.log(flops)[None, :], False, (i,))
            for t in range(flops.size):
                r, tp = ref[t][:, b] - ref[t][:, a], top[:, b] - top[:, a]
                out.append({"kind": spec["kind"], "target": G.TARGETS[t], "oracle": r.var(),
                            "honest": r.var() + tp.var() + (r.mean() - tp.mean()) ** 2,
                            "anchor": tp.var(), **{s: v[s][0][t] for s in ("total", *SOURCES)}})
    df = pd.DataFrame(out)
    print(df.groupby(["kind", "target"]).apply(lambda x: pd.Series({
        "band/oracle sd": np.sqrt(np.median(x["total"] / x["oracle"])),
        "honest/oracle sd": np.sqrt(np.median(x["honest"] / x["oracle"])),
        "band/honest var": np.median(x["total"] / x["honest"]),
        "anchor/oracle var": np.median(x["anchor"] / x["oracle"]),
        **{f"{s} share": x[s].sum() / x["total"].sum() for s in SOURCES}}),
        include_groups=False).round(2).to_string())


def porian(cache: Path, top: bool = False, pair: bool = False, cap: bool = False,
           scale: bool = False, mix: bool = False) -> None:
    raw = pd.read_csv(bc.DATA / "porian2024_isoflop" / "porian2024_isoflop.csv")
    budgets = np.sort(raw["flops"].unique())
    held = budgets[-bc.PORIAN_TOP:]
    out = []
    for corpus, frame in raw.groupby("group"):
        best, settings = bc._best_per_budget(frame), sorted(frame["setting"].unique())
        for cut in (1, 2, 4):
            fit = ScalingFit.load(cache / f"porian_chinchilla_{corpus}_{cut}.nc")
            data = anchor.calibration_data(fit)
            cal = anchor.calibration_from(data, "zero", top=top, pair=pair, cap=cap,
                                          scale=scale or mix, mix=mix)
            o, y2 = data["origin"], data["y"] ** 2 / data["h"]
            print(f"{corpus} cut {cut}: observed (change of gap)² per decade by origin:",
                  ", ".join(f"{k}: {y2[o == k].mean():.1e}" for k in np.unique(o)),
                  f"; beta {cal.origin_scale:.3g} (sd {cal.origin_scale_sd:.2g})")
            for a, b in itertools.combinations(settings, 2):
                v = band_vars(fit, a, b, cal, np.log(held)[None, :], False, (3,))
                for j, c in enumerate(held):
                    if np.isfinite(best.loc[c, a] * best.loc[c, b]):
                        e = best.loc[c, b] - best.loc[c, a] - v["total"][1][j]
                        out.append({"e2": e ** 2, **{s: v[s][0][j]
                                                    for s in ("total", *SOURCES)}})
    df = pd.DataFrame(out)
    print(f"Porian, {len(df)} decisions: mean realised squared error / mean band variance "
          f"{df['e2'].mean() / df['total'].mean():.2f}; median z² "
          f"{np.median(df['e2'] / df['total']):.3f} (0.455 when calibrated); shares "
          + ", ".join(f"{s} {df[s].sum() / df['total'].sum():.2f}" for s in SOURCES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("ladders", "gate", "porian"))
    ap.add_argument("--slice", action="store_true")
    ap.add_argument("--top", action="store_true", help="porian: anchor.DRIFT_AT_TOP on")
    ap.add_argument("--pair", action="store_true", help="porian: anchor.PAIR_SPREAD on")
    ap.add_argument("--cap", action="store_true", help="porian: anchor.SPREAD_CAP on")
    ap.add_argument("--scale", action="store_true", help="porian: anchor.ORIGIN_SCALE on")
    ap.add_argument("--mix", action="store_true",
                    help="porian: anchor.ORIGIN_SCALE on, beta integrated (anchor.ORIGIN_MIX)")
    ap.add_argument("--ladders", default="0,1,2,3,4,5,6,7,8,9,10,11")
    ap.add_argument("--cache", type=Path, default=Path(".fits"))
    args = ap.parse_args()
    if args.part == "ladders":
        ladders(args.slice)
    elif args.part == "gate":
        gate([int(i) for i in args.ladders.split(",")])
    else:
        porian(args.cache, args.top, args.pair, args.cap, args.scale, args.mix)


if __name__ == "__main__":
    main()
