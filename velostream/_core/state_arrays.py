"""Checking the arrays a state snapshot hands back to ``import_state`` (aggregates, sessions,
ROWS buffers): shared by the kernels, and not hot (once per restore)."""
import numpy as np


def state_array(arrays, name: str, dtype, n: int) -> np.ndarray:
    """``arrays[name]`` as a C-contiguous 1-d array of ``dtype`` (same-kind casts only, so no
    float bit pattern is ever converted), of length ``n`` unless ``n < 0``."""
    try:
        a = arrays[name]
    except KeyError:
        raise KeyError(f"state array '{name}' is missing") from None
    a = np.asarray(a)
    dt = np.dtype(dtype)
    if a.dtype != dt:
        a = a.view(np.uint8) if dt == np.uint8 and a.dtype == np.bool_ else a.astype(dt, casting="same_kind")
    a = np.ascontiguousarray(a)
    if a.ndim != 1:
        raise ValueError(f"state array '{name}' must be one-dimensional")
    if n >= 0 and a.shape[0] != n:
        raise ValueError(f"state array '{name}' has {a.shape[0]} entries, expected {n}")
    return a
