"""Files: what the package ships (read with :mod:`importlib.resources`) and atomic writes.

Base layer: imports nothing of the package but :mod:`bayes_scaling.errors`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

Shipped = Literal["models", "data"]


def shipped(kind: Shipped) -> Path:
    """The folder of shipped model specs (``"models"``) or data (``"data"``).

    Parameters
    ----------
    kind : {"models", "data"}
        Which folder: ``bayes_scaling/_models`` and ``bayes_scaling/_data`` link to the
        checkout's ``models/`` and ``data/``, and the wheel carries copies of their files.

    Returns
    -------
    pathlib.Path
        The folder on disk (the package is installed unzipped, as pip does).
    """
    root: Traversable = files("bayes_scaling") / f"_{kind}"
    return Path(str(root))


# ------------------------------------------------------------------ files: atomic, checked
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary file, ``.<name>.<pid>.<random><suffix>``, is removed on any error or
    interrupt, so ``path`` holds either its previous content or the complete new one. A
    temporary file left by a writer that was killed (``kill -9``) is removed by the next write
    of the same target, once its process id is no longer running.

    Parameters
    ----------
    path : path
        The file to write; its folder must exist.
    suffix : str, default ".tmp"
        End of the temporary name (matplotlib picks the image format from it).
    """
    path = Path(path)
    folder = path.parent
    _remove_stale_temps(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix,
                               dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _remove_stale_temps(path: Path, suffix: str) -> None:
    """Delete temporary files of ``path`` whose writer process no longer exists."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]+{re.escape(suffix)}$")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (``True`` if unsure)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # PermissionError: it runs, as another user
        return True
    return True


# ------------------------------------------------------------------ the package's atomic writers
def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path` (all or nothing).

    Parameters
    ----------
    path : path
        The file to write; its folder must exist.
    data : bytes
        The new content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path` (all or nothing).

    An interrupt or ``kill -9`` at any moment leaves ``path`` as it was or fully written.

    Parameters
    ----------
    path : path
        The file to write; its folder must exist.
    text : str
        The new content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(fig: Any, path: str | os.PathLike[str], **kw: Any) -> Path:
    """Save a matplotlib figure to ``path`` through :func:`atomic_path` (all or nothing).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; its ``savefig`` picks the format from ``path``'s suffix.
    path : path
        The file to write; its folder must exist.
    **kw
        Passed to ``fig.savefig`` (``dpi``, ``bbox_inches``, ...).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, **kw)
    return path


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a reader should see it: a shipped file as ``data/...`` or ``models/...``.

    Parameters
    ----------
    path : path
        Any file path.

    Returns
    -------
    str
        The path relative to the project's top level for a file the package ships (the same
        on every install), else ``path`` unchanged.
    """
    resolved = Path(path).resolve()
    for kind in ("data", "models"):
        root = shipped(kind).resolve()  # type: ignore[arg-type]
        if resolved.is_relative_to(root):
            return f"{kind}/{resolved.relative_to(root).as_posix()}"
    return str(path)
