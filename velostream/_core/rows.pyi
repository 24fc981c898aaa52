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
        arg_text: list[bool] | None = None,
        strings: Any = None,
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


class FrameWindow:
    """State of one OVER spec whose frame keeps no row buffer (docs/SQL.md §6): ``"UNBOUNDED"``
    (running state per slot; also RANK and DENSE_RANK) or ``"RANGE"`` (the slot's rows whose
    ORDER BY time lies in ``[t - range_ms, t]``). ``functions`` as ``RowsWindow``'s plus RANK
    and DENSE_RANK; LAG's k is any k >= 1. ``arg_kinds``: ``"int64"``, ``"float64"`` or
    ``"text"`` (string codes of ``strings``) per argument."""

    @property
    def is_range(self) -> bool: ...
    @property
    def range_ms(self) -> int: ...
    def __init__(
        self,
        frame: str,
        range_ms: int,
        functions: list[tuple[str, int, int]],
        arg_kinds: list[str],
        strings: Any = None,
    ) -> None: ...
    def process(
        self,
        slots: npt.NDArray[np.int32],
        times: npt.NDArray[np.int64] | None,
        args: list[tuple[_Values, _Valid]],
    ) -> list[tuple[np.ndarray, npt.NDArray[np.bool_]]]:
        """One ``(values, valid)`` pair per function, one entry per input row."""
        ...
    def late_rows(self, slots: npt.NDArray[np.int32],
                  times: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_] | None:
        """Rows whose ORDER BY value is older than their slot's newest (no state changes)."""
        ...
    def result_dtypes(self) -> list[np.dtype]: ...
    def code_fields(self) -> set[str]: ...
    def export_state(self, slots: npt.NDArray[np.int32]) -> dict[str, np.ndarray]: ...
    def import_state(self, slots: npt.NDArray[np.int32], arrays: dict[str, np.ndarray]) -> None: ...
