r"""Learning-rate schedules and the two areas a schedule-aware curve law reads (numpy only).

The annealing-area law of Tissue et al. (2024), "Scaling Law with Learning Rate Annealing",
arXiv:2408.11029, writes the loss after ``s`` steps through two sums over the learning rate
:math:`\eta_i` (here always relative to the run's peak, so a run at constant peak rate has
:math:`\eta_i = 1`):

.. math::
    S_1(s) = \sum_{i \le s} \eta_i \qquad\text{(forward area, in peak-rate steps)},

    m_i = \lambda m_{i-1} + (\eta_{i-1} - \eta_i), \qquad S_2(s) = \sum_{i \le s} m_i
    \qquad\text{(annealing area)}.

Each drop of the rate takes effect over about ``1/(1-lambda)`` steps (their "momentum";
``lambda`` = :data:`ANNEAL_DECAY`; they use 0.999). This module reports
:math:`A = (1-\lambda) S_2`, the *annealing fraction*: the share of the peak rate dropped so far,
each drop weighted by how far it has taken effect, ``1 - lambda^(steps since the drop)``. It lies
in ``[0, 1]`` (0 at constant rate; near ``1 - final fraction`` well after a full decay), so the
law's annealing constant is a loss in nats (:mod:`bayes_scaling.laws.schedule`).

The sums are computed in continuous time on a grid that holds every knot of the schedule, with
the rate linear inside each cell: exact for constant, linear and WSD schedules and for a rate
given per checkpoint (linear between checkpoints), and within ``1e-6`` relative for cosine on the
default grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bayes_scaling.errors import DataError

#: Decay factor lambda of the annealing momentum, per step (Tissue et al. 2024 use 0.999).
#: Compared among 0.99, 0.995, 0.998, 0.999 by the held-out error of point fits on both public
#: sets with schedules ((Mis)Fitting and Gemstones; benchmarks/results/schedule.md, section 1,
#: held-out areas at the fitted lambda): 0.99-0.998 lie within 0.2 points of each other on each
#: set with either schedule law and none is best on every set; 0.999 is worse on (Mis)Fitting.
ANNEAL_DECAY = 0.998
#: Cells of the integration grid per schedule (besides the knots).
GRID_CELLS = 4000

Shape = Literal["constant", "cosine", "linear", "wsd"]
SHAPES: tuple[str, ...] = ("constant", "cosine", "linear", "wsd")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule, relative to its peak rate.

    Parameters
    ----------
    shape : {"constant", "cosine", "linear", "wsd"}
        After the warm-up: constant; cosine or linear decay from the peak to
        ``final_fraction`` at ``total_steps``; or warmup-stable-decay, constant until
        ``cooldown_start`` then linear to ``final_fraction`` over ``cooldown_steps``.
    total_steps : float, optional
        Length of a cosine or linear schedule (required for them).
    warmup_steps : float
        Linear warm-up from 0 to the peak (default 0).
    final_fraction : float
        Rate at the end of the decay, as a fraction of the peak (default 0).
    cooldown_start, cooldown_steps : float, optional
        Start and length of a WSD cooldown (required for ``"wsd"``).
    """

    shape: Shape = "constant"
    total_steps: float | None = None
    warmup_steps: float = 0.0
    final_fraction: float = 0.0
    cooldown_start: float | None = None
    cooldown_steps: float | None = None

    def __post_init__(self) -> None:
        """Check the shape and the fields it needs."""
        if self.shape not in SHAPES:
            raise DataError(f"unknown learning-rate schedule {self.shape!r}; one of "
                            f"{', '.join(SHAPES)}")
        if self.shape in ("cosine", "linear") and not (self.total_steps or 0) > 0:
            raise DataError(f"a {self.shape} schedule needs total_steps > 0")
        if self.shape == "wsd" and not ((self.cooldown_start or -1) >= 0
                                        and (self.cooldown_steps or 0) > 0):
            raise DataError("a wsd schedule needs cooldown_start >= 0 and cooldown_steps > 0")
        if not 0.0 <= self.final_fraction <= 1.0 or self.warmup_steps < 0:
            raise DataError("final_fraction must be in [0, 1] and warmup_steps >= 0")

    def knots(self) -> list[float]:
        """Steps where the rate's formula changes (the grid always includes them)."""
        out = [0.0, float(self.warmup_steps)]
        if self.shape in ("cosine", "linear"):
            out.append(float(self.total_steps))
        if self.shape == "wsd":
            out += [float(self.cooldown_start), float(self.cooldown_start + self.cooldown_steps)]
        return out

    def end(self) -> float:
        """The last step the schedule defines (later steps hold the final rate)."""
        return max(self.knots())

    def rate(self, steps: np.ndarray) -> np.ndarray:
        """Relative learning rate at ``steps`` (1 = peak)."""
        t = np.asarray(steps, dtype=float)
        w, f = float(self.warmup_steps), float(self.final_fraction)
        if self.shape == "constant":
            body = np.ones_like(t)
        elif self.shape == "wsd":
            x = np.clip((t - self.cooldown_start) / self.cooldown_steps, 0.0, 1.0)
            body = 1.0 - (1.0 - f) * x
        else:
            x = np.clip((t - w) / max(float(self.total_steps) - w, 1e-12), 0.0, 1.0)
            decay = 0.5 * (1.0 + np.cos(np.pi * x)) if self.shape == "cosine" else 1.0 - x
            body = f + (1.0 - f) * decay
        warm = np.clip(t / w, 0.0, 1.0) if w > 0 else np.ones_like(t)
        return np.where(t < w, warm, body)


def areas(knots: np.ndarray, rates: np.ndarray, steps: np.ndarray, *,
          decay: float = ANNEAL_DECAY) -> tuple[np.ndarray, np.ndarray]:
    r"""Forward area :math:`S_1` and annealing fraction :math:`A` at ``steps``.

    Parameters
    ----------
    knots, rates : numpy.ndarray
        A piecewise-linear relative learning rate: ``rates[j]`` at step ``knots[j]``
        (increasing; constant past the last knot).
    steps : numpy.ndarray
        Steps to report (any order; beyond the last knot the rate stays at its last value).
    decay : float
        Tissue et al.'s momentum factor ``lambda`` per step.

    Returns
    -------
    tuple of numpy.ndarray
        ``(S1, A)``: forward area in peak-rate steps, annealing fraction in ``[0, 1]``.
    """
    steps = np.asarray(steps, dtype=float)
    t = np.unique(np.concatenate([np.asarray(knots, float), steps, [0.0]]))
    eta = np.interp(t, knots, rates)
    h, d_eta = np.diff(t), np.diff(eta)
    k = -np.log(decay)                          # continuous decay rate per step
    q = np.exp(-k * h)
    # a fall of the rate is a positive drop; a rise (warm-up) is not annealing and counts 0
    # (Tissue et al. start the sums after the warm-up)
    drop = np.maximum(-d_eta, 0.0)
    # in a cell of length h the drop arrives at rate drop/h: m(t) obeys m' = -k m + drop/h
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(h > 0, drop * (1.0 - q) / np.where(h > 0, k * h, 1.0), 0.0)
        s2_in = np.where(h > 0, drop / np.where(h > 0, h, 1.0)
                         * (h - (1.0 - q) / k) / k, 0.0)
    m = np.zeros(t.size)
    s2 = np.zeros(t.size)
    for j in range(h.size):  # a linear recursion: cheap next to the grid it runs on
        m[j + 1] = q[j] * m[j] + gain[j]
        s2[j + 1] = s2[j] + m[j] * (1.0 - q[j]) / k + s2_in[j]
    s1 = np.concatenate([[0.0], np.cumsum(0.5 * (eta[1:] + eta[:-1]) * h)])
    pos = np.searchsorted(t, steps)
    return s1[pos], (1.0 - decay) * s2[pos]


def schedule_areas(schedule: Schedule, steps: np.ndarray, *, decay: float = ANNEAL_DECAY,
                   cells: int = GRID_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`areas` of a :class:`Schedule` at ``steps`` (grid: its knots and ``cells`` cells).

    Returns
    -------
    tuple of numpy.ndarray
        ``(S1, A)`` as in :func:`areas`.
    """
    steps = np.asarray(steps, dtype=float)
    top = max(schedule.end(), float(steps.max(initial=0.0)))
    grid = np.unique(np.concatenate([np.linspace(0.0, top, cells + 1), schedule.knots(),
                                     steps]))
    return areas(grid, schedule.rate(grid), steps, decay=decay)


#: Per-row schedule columns of a curve table (:mod:`bayes_scaling.data.curves`) and the
#: :class:`Schedule` field each fills; ``lr_schedule`` names the shape.
SCHEDULE_FIELDS: dict[str, str] = {"total_steps": "total_steps", "warmup_steps": "warmup_steps",
                                   "final_lr_fraction": "final_fraction",
                                   "cooldown_start": "cooldown_start",
                                   "cooldown_steps": "cooldown_steps"}


def has_schedule(frame, defaults) -> bool:
    """Whether a curve frame (or the defaults given with it) says anything about schedules."""
    return bool(defaults) or "lr_schedule" in frame.columns or "current_lr" in frame.columns


def _row_schedule(row, defaults) -> Schedule:
    kw = {"shape": row.get("lr_schedule") or defaults.get("shape", "constant")}
    for col, fld in SCHEDULE_FIELDS.items():
        value = row.get(col)
        if value is None or value != value:  # missing or NaN: the default
            value = defaults.get(fld)
        if value is not None:
            kw[fld] = float(value)
    return Schedule(**kw)


def frame_areas(frame, defaults, labels: list[str], name: str,
                decay: float = ANNEAL_DECAY) -> tuple[np.ndarray, np.ndarray]:
    """Forward area and annealing fraction of every row of a validated curve frame.

    A row's schedule is read from its columns (``lr_schedule``, ``total_steps``,
    ``warmup_steps``, ``final_lr_fraction``, ``cooldown_start``, ``cooldown_steps``), each
    missing one from ``defaults`` (:class:`Schedule` field names). A run with ``current_lr`` on
    every row uses the rate it logged instead (relative to its largest, linear between
    checkpoints, held at the first one's before it). Rows of one run may carry different
    schedules (e.g. cooldown branches started at different steps).

    Raises
    ------
    DataError
        One line naming the source, the row and the reason when a row's schedule is invalid.
    """
    s1 = np.empty(len(frame))
    a = np.empty(len(frame))
    logged = "current_lr" in frame.columns
    for _, rows in frame.groupby("run_id", sort=False).groups.items():
        part = frame.loc[rows]
        pos = np.asarray([frame.index.get_loc(r) for r in rows])
        steps = part["steps"].to_numpy(float)
        if logged and part["current_lr"].notna().all():
            lr = part["current_lr"].to_numpy(float)
            knots = np.concatenate([[0.0], steps])
            rates = np.concatenate([[lr[0]], lr]) / lr.max()
            s1[pos], a[pos] = areas(knots, rates, steps, decay=decay)
            continue
        keys = [tuple(None if (v := part[c].iloc[i] if c in part.columns else None) is None
                      or v != v else v for c in ("lr_schedule", *SCHEDULE_FIELDS))
                for i in range(len(part))]
        for key in dict.fromkeys(keys):
            sel = np.asarray([k == key for k in keys])
            row = dict(zip(("lr_schedule", *SCHEDULE_FIELDS), key, strict=True))
            try:
                sched = _row_schedule(row, defaults)
            except DataError as exc:
                raise DataError(f"{name}: {labels[pos[sel][0]]}: {exc}") from None
            s1[pos[sel]], a[pos[sel]] = schedule_areas(sched, steps[sel], decay=decay)
    return s1, a
