"""Exceptions and warnings of bayes_scaling.

Every error a user can cause by bad input derives from :class:`BayesScalingError`; the CLI
prints it as one line and exits with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BayesScalingError(Exception):
    """Bad input or an untrustworthy result the user must act on (one-line message)."""


class DataError(BayesScalingError):
    """A runs table that cannot be used: names the file, the row or field, and the reason."""


class RegistryError(BayesScalingError):
    """A data set that is unknown, missing, or fails its checksum."""


class SpecError(BayesScalingError):
    """A model spec (TOML) that is malformed or does not match its law."""


class FitFileError(BayesScalingError):
    """A saved fit that cannot be loaded (corrupt, wrong version, hash mismatch)."""


class ConvergenceError(BayesScalingError):
    """The posterior failed the convergence gate and the caller asked to refuse it."""


class QueryError(BayesScalingError):
    """A query with impossible arguments (non-positive sizes, unknown group, ...)."""


class ProposalError(BayesScalingError):
    """A compute proposal file that is malformed."""


class ConvergenceWarning(UserWarning):
    """The posterior failed the convergence gate; results that use it are flagged."""


class ExtrapolationWarning(UserWarning):
    """A query lies far outside the range of the runs the law was fitted on."""


class DataWarning(UserWarning):
    """The data load, but hold something the law does not model (results are still given)."""
