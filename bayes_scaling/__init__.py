"""bayes_scaling: hierarchical Bayesian scaling laws for language models.

Predicted loss, tokens needed and compute-optimal allocation for a large training run, with
honest (calibrated) uncertainty. Importing the package is cheap: PyMC is imported only by the
modules that build or sample models (``bayes_scaling.model``), never by queries on a saved fit.

Typical use::

    from bayes_scaling import load_dataset, fit, predict_loss
    runs = load_dataset("chinchilla", drop_highest_loss=5)
    posterior = fit("chinchilla", runs, random_seed=1)
    predict_loss(posterior, 7e10, 1.4e12).summary
"""

from __future__ import annotations

from typing import Any

#: The public API, and the module that owns each name (imported on first use).
_WHERE = {
    "load_runs": "bayes_scaling.data.runs",
    "load_curves": "bayes_scaling.data.curves",
    "load_dataset": "bayes_scaling.data.registry",
    "load_spec": "bayes_scaling.model.spec",
    "ScalingFit": "bayes_scaling.fitting.result",
    "fit": "bayes_scaling.fitting.fit",
    "fit_baseline": "bayes_scaling.fitting.fit",
    "fit_dynamics": "bayes_scaling.fitting.dynamics",
    "FamilyFit": "bayes_scaling.fitting.families",
    "load_fit": "bayes_scaling.fitting.families",
    "fit_stacked": "bayes_scaling.evaluate.stacking",
    "predict_loss": "bayes_scaling.query.predict",
    "tokens_needed": "bayes_scaling.query.predict",
    "compute_optimal": "bayes_scaling.query.allocate",
    "contrast_groups": "bayes_scaling.query.contrast",
    "rank_groups": "bayes_scaling.query.rank",
    "predict_curve": "bayes_scaling.query.curves",
    "backtest": "bayes_scaling.evaluate.backtest",
    "compare": "bayes_scaling.evaluate.compare",
    "diagnose": "bayes_scaling.evaluate.checks",
    "build_risk": "bayes_scaling.report.assemble",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Lazy top-level API (keeps ``import bayes_scaling`` light)."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'bayes_scaling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
