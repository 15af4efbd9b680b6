"""One registry of every law a spec can name: final-loss laws and curve laws."""

from __future__ import annotations

from bayes_scaling.laws.curve import DYNAMICS_LAWS
from bayes_scaling.laws.final_loss import LAWS, Law
from bayes_scaling.laws.schedule import SCHEDULE_LAWS

#: Every curve law by name: L(N, S, B) of :data:`~bayes_scaling.laws.curve.DYNAMICS_LAWS` and
#: the schedule-aware L(N, S1, A, B) of :data:`~bayes_scaling.laws.schedule.SCHEDULE_LAWS`.
CURVE_LAWS: dict[str, Law] = {**DYNAMICS_LAWS, **SCHEDULE_LAWS}
#: Every law by name: the L(N, D) laws of :data:`~bayes_scaling.laws.final_loss.LAWS` and the
#: curve laws of :data:`CURVE_LAWS`.
ALL_LAWS: dict[str, Law] = {**LAWS, **CURVE_LAWS}


def law_of(name: str) -> Law:
    """The law a spec names.

    Parameters
    ----------
    name : str
        A key of :data:`ALL_LAWS` (``"chinchilla"``, ``"kaplan"``, ``"dynamics"``, ...).

    Returns
    -------
    Law
        The law object: its inputs, parameters and log-mean function.
    """
    return ALL_LAWS[name]
