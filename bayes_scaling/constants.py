"""Published constants, defaults and names shared by every module (numpy-free).

Sources
-------
- Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", arXiv:2203.15556,
  approach 3 (published, rounded).
- Besiroglu, Erdil, Barnett, You (2024), "Chinchilla Scaling: A replication attempt",
  arXiv:2404.10102, Table 1 (headline Huber-MLE fit, 240 runs) and their 95% bootstrap intervals.
- Kaplan et al. (2020), "Scaling Laws for Neural Language Models", arXiv:2001.08361, Table 2
  (joint L(N, D)) and section 5 (training dynamics).
"""

from __future__ import annotations

#: Interval probabilities reported by default (the one place this default lives).
DEFAULT_PROBS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
#: Interval shown when the caller asks for a single one.
DEFAULT_INTERVAL: float = 0.9

# Dimension names of every xarray object the package produces.
CHAIN, DRAW, GROUP, RUN, POINT = "chain", "draw", "group", "run", "point"

#: Name of the group a table without a ``group`` column is given.
DEFAULT_GROUP = "all"
#: Pseudo-group asking for the population predictive of an unseen data distribution.
NEW_GROUP = "new"

# Convergence gate defaults (Vehtari et al. 2021 recommendations).
MAX_RHAT = 1.01
MIN_ESS = 400
MAX_DIVERGENCES = 0

PUBLISHED: dict[str, dict[str, float]] = {
    # Hoffmann et al. 2022, approach 3.
    "hoffmann2022": {"e": 1.69, "a": 406.4, "b": 410.7, "alpha": 0.34, "beta": 0.28},
    # Besiroglu et al. 2024, Table 1 headline estimate (240 runs, Huber MLE).
    "epoch2024": {"e": 1.82, "a": 482.01, "b": 2085.43, "alpha": 0.3478, "beta": 0.3658},
    # Kaplan et al. 2020, Table 2, joint L(N, D) fit (non-embedding N, WebText2).
    "kaplan2020": {"alpha_n": 0.076, "alpha_d": 0.103, "n_c": 6.4e13, "d_c": 1.8e13},
    # Kaplan et al. 2020 section 5: L(N, S_min), critical batch size.
    "kaplan2020_dynamics": {
        "alpha_n": 0.077, "n_c": 6.5e13, "alpha_s": 0.76, "s_c": 2.1e3,
        "b_star": 2e8, "alpha_b": 0.21,
    },
}

#: Epoch AI's 95% bootstrap intervals for the 240-run fit (Besiroglu et al. 2024).
EPOCH2024_95: dict[str, tuple[float, float]] = {
    "e": (1.769, 1.871), "a": (285.2, 743.6), "b": (1042.4, 5810.3),
    "alpha": (0.317, 0.373), "beta": (0.331, 0.415),
}

#: Training FLOPs per parameter per token (forward + backward), C = 6 N D.
FLOPS_PER_PARAM_TOKEN = 6.0
#: FLOP per unit of a FLOP column (1 PF-day = 1e15 FLOP/s for a day, as Kaplan et al. 2020).
FLOPS_UNITS: dict[str, float] = {
    "FLOP": 1.0, "kFLOP": 1e3, "MFLOP": 1e6, "GFLOP": 1e9, "TFLOP": 1e12, "PFLOP": 1e15,
    "EFLOP": 1e18, "ZFLOP": 1e21, "PF-days": 1e15 * 86_400.0,
}

# Columns of a runs table (bayes_scaling.data.runs): the names a table is mapped to.
#: Columns every runs table must provide (``n_tokens`` may be derived from ``flops``).
REQUIRED_COLUMNS: tuple[str, ...] = ("n_params", "n_tokens", "loss")
#: Optional numeric columns kept (as float64) when present.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "n_params_nonembedding", "steps", "batch_size_tokens", "learning_rate", "context_length",
)
#: Optional text column: the evaluation set each run's loss was measured on (losses on
#: different sets are not comparable across groups; see :mod:`bayes_scaling.query.contrast`).
EVAL_SET_COLUMN = "eval_set"
#: Every canonical column, in the order a runs table's frame holds them.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "run_id", "group", "n_params", "n_tokens", "flops", "loss", *OPTIONAL_COLUMNS,
    EVAL_SET_COLUMN,
)

#: NUTS backend used when the caller names none (measured fastest: benchmarks/RESULTS.md).
DEFAULT_BACKEND = "numpyro"
