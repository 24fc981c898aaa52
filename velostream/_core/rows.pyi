"""Typing stub of the compiled ROWS-window kernels (``velostream/_core/rows.pyx``)."""
from typing import Any

import numpy as np
import numpy.typing as npt

_Values = npt.NDArray[np.int64] | npt.NDArray[np.float64]
_Valid = npt.NDArray[np.uint8] | npt.NDArray[np.bool_] | None

class RowsWindow:
    """State of one ``ROWS WINDOW BUFFER n ROWS [PARTITION BY ...]`` spec and its functions.

    ``functions``: ``(name, arg_index, offset)`` per function. Names: SUM, AVG, MIN, MAX, COUNT,
    COUNT_STAR, STDDEV, STDDEV_POP, VARIANCE, VAR_POP, LAG, ROW_NUMBER, FIRST_VALUE, LAST_VALUE.
    ``arg_index`` indexes ``arg_dtypes`` (-1 for COUNT_STAR and ROW_NUMBER); ``offset`` is
    LAG's k (``1 <= k < buffer_rows``), ignored otherwise.
    """

    @property
    def buffer_rows(self) -> int: ...
    def __init__(
        self,
        buffer_rows: int,
        functions: list[tuple[str, int, int]],
        arg_dtypes: list[Any],
    ) -> None: ...
    def process(
        self,
        slots: npt.NDArray[np.int32],
        args: list[tuple[_Values, _Valid]],
    ) -> list[tuple[np.ndarray, npt.NDArray[np.bool_]]]:
        """One ``(values, valid)`` pair per function, one entry per input row."""
        ...
    def result_dtypes(self) -> list[np.dtype]: ...
    def export_state(self, slots: npt.NDArray[np.int32]) -> dict[str, np.ndarray]:
        """State of partition ``slots`` as numpy arrays: ``rows``, each argument's history
        (``arg<a>_values``/``_valid``/``_offsets``) and each function's running state
        (``f<i>.<field>``)."""
        ...
    def import_state(self, slots: npt.NDArray[np.int32], arrays: dict[str, np.ndarray]) -> None:
        """Write ``export_state`` arrays into ``slots`` (distinct), replacing their state."""
        ...
