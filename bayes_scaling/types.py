"""Types shared by every layer, defined once (base layer: imports nothing of the package)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeAlias

import numpy as np

#: What every stochastic function takes as ``random_seed``: one Generator is made from it.
SeedLike: TypeAlias = int | np.random.Generator | None
#: A progress callback: receives one short line ("refit 2/4: NUTS").
ProgressFn: TypeAlias = Callable[[str], None]
#: Which band a query returns: the law's (parameter uncertainty) or a new run's (plus noise).
Band: TypeAlias = Literal["law", "predictive"]
#: What a convergence failure does: raise, or warn and carry the flag.
OnBad: TypeAlias = Literal["raise", "warn"]
