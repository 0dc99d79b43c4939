"""Checkpoints as NumPy ``.npz``: written atomically, read without pickle.

A write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target (``os.replace`` is atomic), so a crash or SIGKILL mid-write leaves the
previous checkpoint intact. A read never unpickles (``allow_pickle=False``) and checks
everything before anything is loaded.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from ..errors import CheckpointError
from .module import Module

FORMAT_KEY = "__tinymeta_format__"
FORMAT = "tinymeta-checkpoint-v1"


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, ArrayLike]) -> str:
    """Write a flat dict name -> array to ``path`` atomically.

    Args:
        path: the ``.npz`` file to write (its folder is created if missing).
        arrays: name -> numeric or string array; object arrays (pickles) are refused.

    Returns:
        The path written, as a string.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = {FORMAT_KEY: np.array(FORMAT)}
    for k, v in arrays.items():
        arr = np.asarray(v)
        if arr.dtype.kind == "O":
            raise CheckpointError(f"save: '{k}' is not a numeric/string array (dtype object); "
                                  "checkpoints hold arrays only, never pickles")
        payload[k] = arr
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a checkpoint written by ``save_arrays`` into a dict (all arrays in memory).

    Raises ``CheckpointError`` for a missing, corrupt or foreign file; nothing is unpickled.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"load: no checkpoint at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        bad = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
        if bad:  # np.load hands back raw bytes for zip members that are not .npy arrays
            raise ValueError(f"members {bad[:3]} are not NumPy arrays")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"load: {path!r} is not a readable .npz checkpoint (truncated, "
                              f"corrupt or another format): {type(exc).__name__}: {exc}") from exc
    marker = arrays.pop(FORMAT_KEY, None)
    if not isinstance(marker, np.ndarray) or marker.shape != () or marker.item() != FORMAT:
        raise CheckpointError(f"load: {path!r} is a .npz file but not a tinymeta checkpoint "
                              f"(no '{FORMAT_KEY}' = '{FORMAT}' entry)")
    return arrays


def save(module: Module, path: str | os.PathLike, **extra: ArrayLike) -> str:
    """Save a module's parameters (and optional extra arrays) to ``path``.

    Args:
        module: the model whose ``state_dict()`` is written.
        path: the ``.npz`` file; written atomically, so a crash keeps the previous one.
        extra: more arrays to store beside the parameters (returned by ``load``).

    Returns:
        The path written.

    Example:
        >>> nn.save(model, "model.npz", epoch=np.array(3))
        >>> nn.load(model, "model.npz")["epoch"]
        array(3)
    """
    arrays = {f"param/{k}": v for k, v in module.state_dict().items()}
    arrays.update({f"extra/{k}": v for k, v in extra.items()})
    return save_arrays(path, arrays)


def load(module: Module, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load parameters saved by ``save`` into ``module``; refuses a file whose names or
    shapes do not match, before changing anything. Returns the extra arrays.

    Args:
        module: a model of the same architecture as the one saved.
        path: the ``.npz`` file written by ``save``.

    Returns:
        The extra arrays given to ``save``, by name.
    """
    arrays = load_arrays(path)
    state = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    try:
        module.load_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(f"load: {path!r} does not fit this {type(module).__name__}: {exc}") from exc
    return {k[len("extra/"):]: v for k, v in arrays.items() if k.startswith("extra/")}
