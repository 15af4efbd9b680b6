"""Markdown of ``bench_schedule.py``: ``benchmarks/results/schedule.md`` from its JSON files."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any


def _shell(command: str) -> str:
    """The command as a shell line: the ``--query`` expression quoted."""
    return re.sub(r"--query (.+?) --", lambda m: f"--query '{m.group(1)}' --", command)


def _load(out: Path, key: str) -> dict[str, Any] | None:
    p = out / f"schedule_{key}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _cov(d: dict[str, Any]) -> str:
    return " / ".join(f"{100 * d[f'coverage_{k}']:.0f}%" for k in ("50", "80", "90", "95"))


def write_report(out: Path) -> None:
    """Rebuild ``schedule.md`` from whichever sections have results."""
    lines = ["# Training dynamics under learning-rate schedules (laws `dynamics_schedule`, "
             "`dynamics_schedule_fixed_b`)", "",
             f"`benchmarks/bench_schedule.py`, {platform.machine()}, 2 shared cores, "
             "`nice -n 10`; NUTS fits: 2 chains x 500 tune + 500 draws (numpyro), default "
             "target_accept, one retry after a failed gate. Law: L = (N_c/N)^alpha_N - C A + "
             "(S_c/S1_min)^alpha_S (Tissue et al. 2024 annealing area, arXiv:2408.11029, joined "
             "to Kaplan et al. 2020 / Su et al. 2024).", ""]
    if (r := _load(out, "1")) is not None and "gemstones" in r["rows"][0]:
        lines += ["## 1. Form choice: held-out error of least-squares point fits", "",
                  "(Mis)Fitting: every run with >= 5 checkpoints at each size's best learning "
                  "rate (cosine to 0.1x, 50 warm-up steps), non-embedding N; top k sizes held "
                  "out. Gemstones: the 3 largest sizes (1.9-2.0B) held out, their constant-rate "
                  "and cooled-down losses scored (the law without the term is fitted on the "
                  "constant-rate curves only). Law median vs every held-out checkpoint: median "
                  "abs % error (worst curve's median in brackets). Point fits, no bands.", "",
                  "| form | (Mis)Fitting top 1 | top 2 | top 3 | Gemstones constant | "
                  "Gemstones cooled | worst set |", "|---|---|---|---|---|---|---|"]
        worst_of = {}
        for row in r["rows"]:
            m = [row[f"top{k}"] for k in (1, 2, 3)]
            g = row["gemstones"]
            worst = max(max(x["median_abs_pct"] for x in m), g["constant"], g["cooled"])
            cells = " | ".join(f"{x['median_abs_pct']:.2f} ({x['worst_curve']:.2f})" for x in m)
            lines.append(f"| {row['form']} | {cells} | {g['constant']:.2f} | {g['cooled']:.2f} "
                         f"| {worst:.2f} |")
            worst_of[row["form"]] = worst
        best = min(worst_of, key=worst_of.get)
        lines += ["", f"Smallest worst-set error on this run: {best} ({worst_of[best]:.2f}). "
                  "Held-out curves get their areas at the same lambda as the training curves "
                  "(runs before 2026-12-07 scored them at 0.998 whatever lambda was fitted, which "
                  "favoured 0.998). Per set: lambda 0.99-0.998 are within 0.2 points of each other "
                  "on (Mis)Fitting and on Gemstones with either law, none best on every set; "
                  "0.999 is worse on (Mis)Fitting. The default stays `ANNEAL_DECAY = 0.998`.", ""]
    models = (("", "`dynamics_schedule` (B_crit(L))"),
              ("_fixedb", "`dynamics_schedule_fixed_b` (no B_crit)"))
    if any(_load(out, f"2{t}") or _load(out, f"2b{t}") for t, _ in models):
        lines += ["## 2. (Mis)Fitting, NUTS: all curves in one fit, and rolling origin by size",
                  "", "One batch size (1M tokens) on every run, so B_crit is not identified by "
                  "batch variation; both schedule laws are shown.", ""]
        for tag, label in models:
            if (a := (_load(out, f"2{tag}") or {}).get("all")) is None:
                continue
            lines += [f"{label}: all {a['curves']} curves ({a['lengths']} schedule lengths, "
                      f"{a['points']} points after thinning) in one fit: gate "
                      f"{'passed' if a['passed'] else 'FAILED'} (max r-hat {a['max_rhat']:.3f}, "
                      f"min bulk ESS {a['min_ess_bulk']:.0f}, {a['divergences']} divergences), "
                      f"{a['seconds']:.0f} s. Constants (5%, 50%, 95%): " + ", ".join(
                          f"{k} {v[1]:.4g} [{v[0]:.4g}, {v[2]:.4g}]"
                          for k, v in a["constants"].items()), ""]
        lines += ["Rolling-origin refits: training curves thinned to 10 checkpoints each; "
                  "held-out curves scored on every checkpoint; no automatic retry after a failed "
                  "gate (the verdict is shown). Predictive band = law + whole-curve offset + "
                  "checkpoint noise.", "",
                  "| model | held out | train curves | held-out curves (points) | median abs % "
                  "error (pooled) | median / worst curve | 50 / 80 / 90 / 95% coverage | gate |",
                  "|---|---|---|---|---|---|---|---|"]
        extra = (("_fixedb_p30", "`dynamics_schedule_fixed_b`, 30 checkpoints per training "
                  "curve (the library default)"),
                 ("_bcritl_p30_top3", "`dynamics_schedule` (B_crit(L)), 30 checkpoints per "
                  "training curve"),
                 ("_fixedb_ms500", "`dynamics_schedule_fixed_b`, checkpoints before step 500 "
                  "also dropped (train and test)"))
        for tag, label in (*models, *extra):
            for row in (_load(out, f"2b{tag}") or {"rolling": []})["rolling"]:
                p = row["pooled"]
                lines.append(f"| {label} | top {row['top']} | {row['train_curves']} | "
                             f"{p['test_curves']} ({p['test_points']}) | "
                             f"{p['median_abs_pct_error']:.2f} | "
                             f"{p['median_of_curve_errors']:.2f} / {p['max_curve_error']:.2f} | "
                             f"{_cov(p)} | {'passed' if row['passed'] else 'FAILED'} "
                             f"(r-hat {row['max_rhat']:.3f}, {row['divergences']} div) |")
        lines.append("")
    r3 = [x for key in ("3a", "3", "3_fixedb", "3_studentt")
          if (x := _load(out, key)) is not None]
    for x in r3:  # the README's worked WSD example: the commands and their real output
        if "transcript" in x and x.get("model", "dynamics_schedule") == "dynamics_schedule":
            (out / "schedule_readme.txt").write_text("\n".join(
                f"$ {_shell(t['command'])}\n{re.sub(r'/tmp/tmp[^/ ]*/', '', t['output'])}"
                for t in x["transcript"]))
    if r3:
        r = {"rows": [{**row, "held_out": f"{x.get('model', 'dynamics_schedule')}"
                                          f"{' ' + x['fit_flags'] if x.get('fit_flags') else ''}"
                                          f": {row['held_out']}"}
                      for x in r3 for row in x["rows"]]}
        lines += ["## 3. Gemstones (WSD): constant-rate curves and cooled-down losses", "",
                  "Base learning rate; constant-rate checkpoints every ~10B tokens and the loss "
                  "at the end of each cooldown branch (linear to 0 over ~10% more steps, "
                  "started at a constant-rate checkpoint), one batch size; all checkpoints kept "
                  "(no warm-up rule: the first is at 10B tokens).", "",
                  "| held out | train curves (points) | kind | points | median abs % error | "
                  "50 / 80 / 90 / 95% coverage | gate |", "|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            for kind, k in row["by_kind"].items():
                cov = " / ".join(f"{100 * k[f'in_{q}']:.0f}%" for q in ("50", "80", "90", "95"))
                lines.append(f"| {row['held_out']} | {row['train_curves']} "
                             f"({row['train_points']}) | {kind} | {k['points']} | "
                             f"{k['median_abs_pct']:.2f} | {cov} | "
                             f"{'passed' if row['passed'] else 'FAILED'} |")
            p = row["pooled"]
            lines.append(f"| {row['held_out']} | | pooled | {p['test_points']} | "
                         f"{p['median_abs_pct_error']:.2f} | {_cov(p)} | r-hat "
                         f"{row['max_rhat']:.3f}, {row['divergences']} div, "
                         f"{row['seconds']:.0f} s |")
        lines.append("")
        for row in r["rows"]:
            c = row["constants"]["log_c_anneal"]
            noise = ", ".join(f"{k} median {v[1]:.3g}" for k, v in row["constants"].items()
                              if k in ("sigma", "sigma_curve", "nu"))
            lines.append(f"- {row['held_out']}: annealing constant C = "
                         f"{2.718281828 ** c[1]:.3f} nats (90%: {2.718281828 ** c[0]:.3f}-"
                         f"{2.718281828 ** c[2]:.3f}); {noise}.")
        lines.append("")
    bands = out / "schedule_bands.json"  # bench_schedule_bands.py (written since session 10)
    if bands.exists():
        b = json.loads(bands.read_text())
        lines += ["What 3 held-out models can resolve, and the half learning rate "
                  "(`schedule_bands.md`, `bench_schedule_bands.py`; current code, packaged "
                  "default noise unless marked Student-t):", ""]
        for row, label in (("gem_base", "base LR"), ("gem_base_t", "base LR, Student-t"),
                           ("gem_half", "half LR"), ("gem_half_t", "half LR, Student-t")):
            if row not in b:
                continue
            x = b[row]["normal"]
            kinds = x["pooled"].get("by_schedule", {"constant": x["pooled"]})
            cells = "; ".join(
                f"{k}: {v['median_abs_pct_error']:.2f}% error, 90% coverage "
                f"{v['coverage_90']:.0%} (a calibrated band shows "
                f"{x['calibrated_90'][k][0]:.0%}-{x['calibrated_90'][k][1]:.0%})"
                for k, v in kinds.items())
            gate = "gate passed" if b[row]["passed"] else "gate FAILED"
            lines.append(f"- {label}: {cells}; {gate}.")
        lines.append("")
    if (r := _load(out, "4")) is not None:
        lines += ["## 4. Synthetic recovery of the schedule law", "",
                  "5 sizes (20M-400M) x 5 schedules (cosine to 0.1x of 2,000/6,000/16,000 steps, "
                  "WSD cooling 8,000-10,000, constant to 12,000), 10 checkpoints each, batch "
                  "5e5; checkpoint noise 0.4%, curve offsets 1%.", "",
                  "| constant | truth | " + " | ".join(f"seed {x['seed']}: median [90%]"
                                                      for x in r["rows"]) + " | inside |",
                  "|---|---|" + "---|" * len(r["rows"]) + "---|"]
        for p, t in r["truth"].items():
            cells = [f"{x['constants'][p][1]:.4g} [{x['constants'][p][0]:.4g}, "
                     f"{x['constants'][p][2]:.4g}]" for x in r["rows"]]
            k = sum(x["inside"][p] for x in r["rows"])
            lines.append(f"| {p} | {t:.4g} | " + " | ".join(cells) + f" | {k}/{len(r['rows'])} |")
        total = sum(sum(x["inside"].values()) for x in r["rows"])
        n = sum(len(x["inside"]) for x in r["rows"])
        lines += ["", f"Inside their 90% intervals: {total}/{n}. Convergence: " + "; ".join(
            f"seed {x['seed']}: r-hat {x['max_rhat']:.3f}, {x['divergences']} div"
            for x in r["rows"]), ""]
    if (r := _load(out, "5")) is not None and "runs" in r:
        lines += ["## 5. Speed: 20,000 checkpoints, no thinning", "",
                  f"{r['rows_read']:,} checkpoints (40 cosine curves of 500, one batch size) -> "
                  "`load_curves` (schedule areas, warm-up rule only, no thinning) -> "
                  "`fit_dynamics` (2 chains x 500 tune + 500 draws, no retry), `nice -n 15` on "
                  f"the shared {r['cores']}-core machine (load average at start and end of each "
                  "fit shown; the CPU seconds are the comparable figure). The table is drawn "
                  "from `dynamics_schedule` (with B_crit(L)).", "",
                  "| model | points fitted | wall s (end to end) | CPU s | sampling s | "
                  "load avg | gate |", "|---|---|---|---|---|---|---|"]
        later = _load(out, "5_startfix") or {"runs": []}
        for x in [*r["runs"], *({**y, "model": f"{y['model']} (start fit on <= 3,000 points)"}
                               for y in later["runs"])]:
            lines.append(f"| `{x['model']}` | {x['points_fitted']:,} | **{x['total_s']:.0f}** | "
                         f"{x['cpu_s']:.0f} | {x['sampling_s']:.0f} | "
                         f"{x['loadavg_start']:.1f} -> {x['loadavg_end']:.1f} | "
                         f"{'passed' if x['passed'] else 'FAILED'} (r-hat {x['max_rhat']:.3f}, "
                         f"{x['divergences']} div) |")
        if len(r["runs"]) == 2:
            a, b = r["runs"]
            lines += ["", f"Ratio (wall, `{b['model']}` / `{a['model']}`): "
                      f"{b['total_s'] / a['total_s']:.1f}x; CPU: "
                      f"{b['cpu_s'] / a['cpu_s']:.1f}x."]
        lines.append("")
    if (r := _load(out, "5g")) is not None:
        lines += ["Per gradient (JAX log density and gradient of each model's graph on the same "
                  f"unthinned table, {r['points']:,} points; median of 2 interleaved runs of 200 "
                  f"evaluations; load {r['loadavg_start']:.1f} -> {r['loadavg_end']:.1f}):", "",
                  "| model | CPU ms | wall ms |", "|---|---|---|"]
        for m, x in r["runs"].items():
            lines.append(f"| `{m}` | {x['cpu_ms']:.1f} | {x['wall_ms']:.1f} |")
        lines.append("")
    if (r := _load(out, "5d")) is not None:
        lines += ["### 5d. The same table after the curve graph's changes (2026-12-07)", "",
                  "The solve's stop-gradient now survives the translation to JAX (before, "
                  "numpyro's gradient ran back through every Newton iteration), the "
                  "per-checkpoint arithmetic is float32 from 10,000 checkpoints on, NUTS runs "
                  "in the Laplace-whitened space above 10,000 checkpoints, and a law without "
                  "B_crit samples at target acceptance 0.95 (`bench_target_accept.py`). "
                  "Chains one after another (`sampling.PARALLEL_MAX_OBS`), nice 0 beside "
                  "helpers at nice 19. Peak memory is the process's so far (models in turn).", "",
                  "| model | NUTS | wall s (end to end) | CPU s | steps/draw | target | start | "
                  "precision | gate | min bulk / tail ESS | peak MB | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        solve = _load(out, "5e") or {"runs": []}
        forced = _load(out, "5e_laplace") or {"runs": []}  # BAYES_SCALING_INIT_MASS=laplace
        for x in [*r["runs"], *({**y, "model": f"{y['model']} (4 batch sizes)"}
                                for y in solve["runs"]),
                  *({**y, "model": f"{y['model']} (4 batch sizes, whitening forced)"}
                    for y in forced["runs"])]:
            nuts = (x["settings"] if isinstance(x["settings"], str) else
                    "{chains} chains x {tune} + {draws}".format(**x["settings"]))
            lines.append(f"| `{x['model']}` | {nuts} | **{x['total_s']:.0f}** | "
                         f"{x['cpu_s']:.0f} | {x['steps_per_draw']:.1f} | "
                         f"{x['target_accept']} | {x['init_mass']} | {x['precision']} | "
                         f"{'passed' if x['passed'] else 'FAILED'} (r-hat {x['max_rhat']:.3f}, "
                         f"{x['divergences']} div) | {x['min_ess_bulk']:.0f} / "
                         f"{x['min_ess_tail']:.0f} | {x['peak_mb']:.0f} | "
                         f"{x['loadavg_start']:.1f} |")
        lines.append("")
    (out / "schedule.md").write_text("\n".join(lines))
