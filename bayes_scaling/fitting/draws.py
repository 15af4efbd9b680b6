"""The draws of a fit as xarray groups: the part of ArviZ's ``InferenceData`` a fit needs.

Loading and querying a saved fit reads these groups with xarray and h5netcdf alone; ArviZ (which
pulls scipy.stats, matplotlib and numba: seconds of import) is loaded only by the code that
samples, computes LOO or draws ArviZ plots, through :meth:`Draws.to_arviz`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import h5netcdf
import numpy as np
import xarray as xr

#: Groups a fit keeps (the sampler's other groups, e.g. observed data, are dropped).
KEPT_GROUPS = ("posterior", "sample_stats")


class Draws(Mapping[str, xr.Dataset]):
    """Named xarray Datasets (``posterior``, ``sample_stats``), read-only.

    Parameters
    ----------
    **groups : xarray.Dataset
        The groups; ``posterior`` is required.
    """

    def __init__(self, **groups: xr.Dataset) -> None:
        if "posterior" not in groups:
            raise ValueError("a fit's draws need a posterior group")
        self._groups = dict(groups)

    @classmethod
    def of(cls, idata: Any) -> Draws:
        """The kept groups of ``idata`` (Draws or ArviZ InferenceData) as :class:`Draws`."""
        if isinstance(idata, Draws):
            return idata
        return cls(**{g: idata[g] for g in idata.groups() if g in KEPT_GROUPS})

    def __getitem__(self, group: str) -> xr.Dataset:
        return self._groups[group]

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def __getattr__(self, group: str) -> xr.Dataset:
        try:
            return self.__dict__["_groups"][group]
        except KeyError:
            raise AttributeError(group) from None

    def groups(self) -> list[str]:
        """The group names (as ``InferenceData.groups()``)."""
        return list(self._groups)

    def to_arviz(self) -> Any:
        """The same groups as an ArviZ ``InferenceData`` (imports ArviZ)."""
        import arviz as az  # lazy: ArviZ costs seconds to import; the query path never needs it

        return az.InferenceData(**self._groups)


def write_groups(path: str | os.PathLike[str], groups: Mapping[str, xr.Dataset]) -> None:
    """Write each Dataset as a netCDF group of one HDF5 file (numbers zlib-compressed)."""
    for i, (name, ds) in enumerate(groups.items()):
        encoding = {v: {"zlib": True} for v in ds.data_vars
                    if np.issubdtype(ds[v].dtype, np.number)}
        ds.to_netcdf(path, mode="w" if i == 0 else "a", group=name, engine="h5netcdf",
                     encoding=encoding)


def read_groups(path: str | os.PathLike[str]) -> dict[str, xr.Dataset]:
    """Every netCDF group of a file, read into memory (the file is closed on return)."""
    with h5netcdf.File(path, "r") as handle:
        names = list(handle.groups)
    out = {}
    with warnings.catch_warnings():  # reader chatter on odd files: the caller judges the groups
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in names:
            with xr.open_dataset(path, group=name, engine="h5netcdf") as ds:
                out[name] = ds.load()
    return out
