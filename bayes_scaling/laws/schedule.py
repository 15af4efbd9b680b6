r"""The curve law with a learning-rate-schedule term ``L(N, S_1, A, B)`` (numpy; PyTensor: ``xp``).

Tissue et al. (2024), "Scaling Law with Learning Rate Annealing", arXiv:2408.11029, write the
loss of one model along any schedule as :math:`L(s) = L_0 + A S_1^{-\alpha} - C S_2`: a power
law in the forward area :math:`S_1 = \sum \eta_i` (steps weighted by the learning rate) minus a
term linear in the annealing area :math:`S_2` (:mod:`bayes_scaling.data.schedules`). Here that
form is joined to the size and batch terms of Kaplan et al. (2020, section 5) and Su et al.
(2024, arXiv:2403.06563) (:mod:`bayes_scaling.laws.curve`):

.. math::
    L = (N_c/N)^{\alpha_N} - C\,A + (S_c/S_{1,min})^{\alpha_S}, \qquad
    S_{1,min} = S_1 / (1 + B_{crit}(L)/B), \qquad B_{crit}(L) = B^*/L^{1/\alpha_B},

with ``S_1`` in peak-rate steps and ``A = (1 - lambda) S_2`` in ``[0, 1]`` the annealing
fraction, so ``C`` (``exp(log_c_anneal)``) is the loss in nats that a fully taken-effect decay of
the whole peak rate removes. At a constant rate (``S_1 = S``, ``A = 0``) it is exactly the law
``dynamics``. The annealing term lowers the floor the step term sits on, so the solve of
:func:`bayes_scaling.laws.curve.solve_step_term` is used unchanged with
``log L_floor = log((N_c/N)^alpha_N - C A)``.

Chosen by measurement (``benchmarks/bench_schedule.py``, section 1) against the law without the
term and against Tissue et al.'s term scaled with the size term.
"""

from __future__ import annotations

from bayes_scaling.laws.curve import (
    MAX_ITERATIONS,
    NUMPY_SOLVER_OPS,
    solve_step_term,
)
from bayes_scaling.laws.final_loss import Law

#: The annealing term may lower the size term to no less than this fraction of it (a guard
#: far outside the posterior: the term is a few percent of the loss on every public set).
MIN_FLOOR_FRACTION = 0.05


def log_loss_schedule(log_n, log_s1, log_b, anneal, *, log_n_c, alpha_n, log_s_c, alpha_s,
                      log_b_star, alpha_b, log_c_anneal, xp=NUMPY_SOLVER_OPS,
                      iterations: int = MAX_ITERATIONS, log_start=None):
    r"""``log L(N, S_1, A, B)``: the loss after forward area ``S_1`` with annealing fraction ``A``.

    Parameters
    ----------
    log_n, log_s1, log_b
        Natural logs of parameters, forward area (peak-rate steps) and batch size (tokens).
    anneal
        Annealing fraction ``A`` in ``[0, 1]`` (not a log).
    log_n_c, alpha_n, log_s_c, alpha_s, log_b_star, alpha_b
        The constants of :func:`bayes_scaling.laws.curve.log_loss_nsb`.
    log_c_anneal
        Log of ``C``, the loss (nats) a full decay removes.
    xp, iterations, log_start
        As for :func:`bayes_scaling.laws.curve.solve_step_term`.

    Returns
    -------
    array_like
        ``log L``, the broadcast shape of the inputs.
    """
    size = xp.exp(alpha_n * (log_n_c - log_n))
    floor = size - xp.exp(log_c_anneal) * anneal
    floor = xp.where(floor > MIN_FLOOR_FRACTION * size, floor, MIN_FLOOR_FRACTION * size)
    log_floor = xp.log(floor)
    v = solve_step_term(log_floor, alpha_s * (log_s_c - log_s1), log_b_star - log_b,
                        alpha_s=alpha_s, alpha_b=alpha_b, xp=xp, iterations=iterations,
                        log_start=log_start)
    return xp.logaddexp(log_floor, v)


#: The schedule-aware curve law (inputs ``n, s1, b, anneal``: logs but for ``anneal``).
DYNAMICS_SCHEDULE = Law(
    "dynamics_schedule", ("n", "s1", "b", "anneal"),
    ("log_n_c", "alpha_n", "log_s_c", "alpha_s", "log_b_star", "alpha_b", "log_c_anneal"),
    log_mean=log_loss_schedule,
    citation="Tissue et al. (2024), arXiv:2408.11029 (annealing area); Kaplan et al. (2020), "
             "arXiv:2001.08361, section 5; Su et al. (2024), arXiv:2403.06563",
    formula="L = (N_c/N)^alpha_N - C A + (S_c/S1_min)^alpha_S, S1_min = S1/(1 + B_crit(L)/B), "
            "B_crit(L) = B*/L^(1/alpha_B); S1 forward area, A annealing fraction",
)


def log_loss_schedule_fixed_b(log_n, log_s1, anneal, *, log_n_c, alpha_n, log_s_c, alpha_s,
                              log_c_anneal, xp=NUMPY_SOLVER_OPS, iterations: int = MAX_ITERATIONS,
                              log_start=None):
    r"""``log L(N, S_1, A)`` at one batch size: :func:`log_loss_schedule` without ``B_crit``.

    .. math:: L = (N_c/N)^{\alpha_N} - C\,A + (S_c/S_1)^{\alpha_S}

    With every run at one batch size ``B``, ``S_{1,min} = S_1/(1 + B_crit/B)`` identifies no
    batch effect: a constant ``B_crit/B`` is absorbed by ``S_c``, and ``B_crit(L)`` only slows
    the curve down as the loss it reaches falls, which it does with ``N``, so it trades off
    against the size term. On (Mis)Fitting's one-batch curves (short cosine runs) it ran to
    ``alpha_B ~ 0.04`` (four prior sds below Kaplan et al.'s 0.21) with 6 training sizes and put
    the 3 held-out sizes' loss 5% high; this law held them to 1.5%. On Gemstones (constant rate
    to 100B tokens) the slowdown is what the curves need, and this law misses the held-out
    sizes by 2.6% against 0.6% (``benchmarks/results/schedule.md``): backtest both. A closed
    form (no solve). ``iterations`` and ``log_start`` are accepted for the common signature and
    ignored.
    """
    del iterations, log_start
    size = xp.exp(alpha_n * (log_n_c - log_n))
    floor = size - xp.exp(log_c_anneal) * anneal
    floor = xp.where(floor > MIN_FLOOR_FRACTION * size, floor, MIN_FLOOR_FRACTION * size)
    return xp.logaddexp(xp.log(floor), alpha_s * (log_s_c - log_s1))


#: The schedule-aware curve law for tables at one batch size (inputs ``n, s1, anneal``).
DYNAMICS_SCHEDULE_FIXED_B = Law(
    "dynamics_schedule_fixed_b", ("n", "s1", "anneal"),
    ("log_n_c", "alpha_n", "log_s_c", "alpha_s", "log_c_anneal"),
    log_mean=log_loss_schedule_fixed_b,
    citation="Tissue et al. (2024), arXiv:2408.11029 (annealing area); Kaplan et al. (2020), "
             "arXiv:2001.08361, section 5",
    formula="L = (N_c/N)^alpha_N - C A + (S_c/S1)^alpha_S; S1 forward area, A annealing "
            "fraction; one batch size",
)
#: Registry of schedule-aware curve laws.
SCHEDULE_LAWS: dict[str, Law] = {"dynamics_schedule": DYNAMICS_SCHEDULE,
                                 "dynamics_schedule_fixed_b": DYNAMICS_SCHEDULE_FIXED_B}
