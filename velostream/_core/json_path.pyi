import numpy as np

FALLBACK: int  # a row's status: the caller's reference path computes it
MODES: dict[str, int]  # EXISTS, VALUE, EXTRACT, EXTRACT_STRING
KEY: int  # step kinds
INDEX: int
POINTER: int
MAX_PATH_STEPS: int
MAX_FROM_END: int  # the largest n of a [#-n] step

def extract(
    offsets: np.ndarray,  # int32, n + 1: the string array's offsets (its offset applied)
    data: np.ndarray,  # uint8: its UTF-8 bytes
    valid: np.ndarray,  # uint8, n (or empty: no NULLs)
    kinds: np.ndarray,  # int8, one per step
    index: np.ndarray,  # int64, one per step
    keys: np.ndarray,  # uint8: the steps' keys, one after the other
    key_at: np.ndarray,  # int64, steps + 1: where each step's key starts in keys
    mode: int,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]: ...
