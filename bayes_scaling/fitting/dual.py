"""Forward-mode dual numbers: exact gradients of the log-space laws for the Huber fits, with
no autodiff library (each law body runs on these through its ``xp`` argument)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np


class Dual:
    """Forward-mode dual number: a value and its derivatives with respect to every parameter.

    Laws use only ``+ - * / **`` and ``xp.exp/log/logaddexp``, so evaluating one on duals
    gives its exact Jacobian in one pass, with transcendental functions on values only.
    """

    __slots__ = ("d", "v")
    __array_ufunc__ = None  # make ``ndarray op Dual`` defer to the reflected methods below

    def __init__(self, v: Any, d: Any) -> None:
        self.v, self.d = v, d

    def __add__(self, o: Any) -> Dual:
        if isinstance(o, Dual):
            return Dual(self.v + o.v, self.d + o.d)
        return Dual(self.v + o, self.d)

    __radd__ = __add__

    def __neg__(self) -> Dual:
        return Dual(-self.v, -self.d)

    def __sub__(self, o: Any) -> Dual:
        return self + (-o)

    def __rsub__(self, o: Any) -> Dual:
        return (-self) + o

    def __mul__(self, o: Any) -> Dual:
        if isinstance(o, Dual):
            return Dual(self.v * o.v, self.d * o.v + self.v * o.d)
        return Dual(self.v * o, self.d * o)

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Dual:
        if isinstance(o, Dual):
            return Dual(self.v / o.v, (self.d * o.v - self.v * o.d) / (o.v * o.v))
        return Dual(self.v / o, self.d / o)

    def __rtruediv__(self, o: Any) -> Dual:
        return Dual(o / self.v, -o * self.d / (self.v * self.v))

    def __pow__(self, o: Any) -> Dual:
        if isinstance(o, Dual):
            return _dual_exp(o * _dual_log(self))
        return Dual(self.v**o, o * self.v ** (o - 1) * self.d)

    def __rpow__(self, o: Any) -> Dual:
        return _dual_exp(self * np.log(o))


def _dual_exp(x: Any) -> Any:
    if not isinstance(x, Dual):
        return np.exp(x)
    v = np.exp(x.v)
    return Dual(v, v * x.d)


def _dual_log(x: Any) -> Any:
    if not isinstance(x, Dual):
        return np.log(x)
    return Dual(np.log(x.v), x.d / x.v)


def _dual_logaddexp(x: Any, y: Any) -> Any:
    xv = x.v if isinstance(x, Dual) else x
    yv = y.v if isinstance(y, Dual) else y
    v = np.logaddexp(xv, yv)
    if not (isinstance(x, Dual) or isinstance(y, Dual)):
        return v
    w = np.exp(xv - v)  # d/dx logaddexp(x, y) = exp(x - v); d/dy = 1 - that
    d = w * x.d if isinstance(x, Dual) else 0.0
    return Dual(v, d + (1.0 - w) * y.d if isinstance(y, Dual) else d)


DUAL_OPS = SimpleNamespace(exp=_dual_exp, log=_dual_log, logaddexp=_dual_logaddexp)
