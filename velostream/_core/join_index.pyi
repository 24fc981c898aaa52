"""Type stub for the compiled ``velostream._core.join_index`` module."""
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Int64Column = npt.NDArray[np.int64]

class KeyRuns:
    """Rows of one side of a join by key, each key's rows in (time, arrival) order."""

    def __init__(self, words: Sequence[Int64Column], times: Int64Column,
                 usable: npt.NDArray[np.bool_] | None = None) -> None: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_keys(self) -> int: ...
    def as_of(self, words: Sequence[Int64Column], times: Int64Column,
              usable: npt.NDArray[np.bool_] | None, out: Int64Column) -> None: ...
    def in_range(self, words: Sequence[Int64Column], times: Int64Column,
                 usable: npt.NDArray[np.bool_] | None, lo_ms: int,
                 hi_ms: int) -> tuple[Int64Column, Int64Column]: ...

class TextCodes:
    """Distinct strings of one Arrow string array numbered densely; other arrays looked up."""

    def __init__(self, offsets: npt.NDArray[np.int32], data: npt.NDArray[np.uint8],
                 valid: npt.NDArray[np.bool_] | None) -> None: ...
    @property
    def codes(self) -> npt.NDArray[np.int32]: ...
    @property
    def n_codes(self) -> int: ...
    def lookup(self, offsets: npt.NDArray[np.int32], data: npt.NDArray[np.uint8],
               valid: npt.NDArray[np.bool_] | None, out: npt.NDArray[np.int32]) -> None: ...
