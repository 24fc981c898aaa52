"""Typing stub of the compiled aggregate accumulators (``velostream/_core/aggregate.pyx``).

Every class keeps one aggregate's state per *slot* (int32, from ``GroupTable``). ``slots`` arrays
hold one slot per row; a slot < 0 skips the row. ``valid`` masks are bool or uint8 (None: all
valid). Inputs may be read-only; every array must be C-contiguous.
"""
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

_Slots = npt.NDArray[np.int32]
_Values = npt.NDArray[np.int64] | npt.NDArray[np.float64]
_Valid = npt.NDArray[np.uint8] | npt.NDArray[np.bool_]
_Seq = npt.NDArray[np.int64]

class Aggregate:
    """Base class; not instantiable."""

    def __init__(self, dtype: Any) -> None: ...
    @property
    def dtype(self) -> np.dtype:
        """Input dtype: int64 or float64."""
        ...
    @property
    def result_dtype(self) -> np.dtype: ...
    @property
    def capacity(self) -> int:
        """Slots allocated; valid slot ids are ``0 <= slot < capacity``."""
        ...
    def ensure_capacity(self, n_slots: int) -> None:
        """Grow to at least ``n_slots`` slots (new slots empty); never shrinks."""
        ...
    def update(
        self,
        slots: _Slots,
        values: _Values | None,
        valid: _Valid | None = None,
        seq: _Seq | None = None,
    ) -> None:
        """Fold rows into their slots. ``seq``: arrival numbers (only FIRST/LAST read them);
        None numbers rows per object in call order. ValueError for a slot >= capacity or a length
        or dtype mismatch."""
        ...
    def update_emit(
        self,
        slots: _Slots,
        values: _Values | None,
        valid: _Valid | None,
        out_values: np.ndarray,
        out_valid: _Valid,
        seq: _Seq | None = None,
    ) -> None:
        """``update`` that also writes, per row, its slot's value just after that row
        (EMIT CHANGES) into ``out_values`` (``result_dtype``) and ``out_valid``."""
        ...
    def result(self, slots: _Slots) -> tuple[np.ndarray, npt.NDArray[np.bool_]]:
        """``(values of result_dtype, valid)`` for each slot; a slot < 0 reads as NULL."""
        ...
    def reset(self, slots: _Slots) -> None:
        """Empty the slots (entries < 0 ignored); CountDistinct and Median free their memory."""
        ...
    def merge(self, dst_slots: _Slots, other: Aggregate, src_slots: _Slots) -> None:
        """Fold ``other``'s ``src_slots[i]`` into ``dst_slots[i]``; ``other`` is the same class
        and dtype, possibly ``self``. Sources are left unchanged."""
        ...
    def export_state(self, slots: _Slots) -> dict[str, np.ndarray]:
        """The state of ``slots`` (each in ``[0, capacity)``) as plain numpy arrays, bit for bit:
        per-slot fields have one entry per slot; variable-size ones (COUNT DISTINCT sets, MEDIAN
        bags/heaps) are ``<name>_values`` plus int64 ``<name>_offsets`` (length n + 1); the
        exact BIGINT sum is ``sum_hi``/``sum_lo`` (two int64 words); ``next_seq`` (one element)
        is the object's arrival counter. Fields per class: CountStar/Count ``counts``; Sum/Avg
        ``nobs`` + ``fsum``/``fcomp`` or ``sum_hi``/``sum_lo``; Min/Max ``has``, ``value``;
        Variance ``nobs``, ``mean``, ``m2``; CountDistinct ``set``; First/Last ``state``,
        ``seq``, ``value``; Median ``n_nan``, ``heaped``, ``lo``, ``hi``."""
        ...
    def import_state(self, slots: _Slots, arrays: Mapping[str, np.ndarray]) -> None:
        """Write ``export_state`` arrays into ``slots`` (after ``ensure_capacity``), replacing
        their state; afterwards ``result``, ``merge`` and ``update`` behave exactly as on the
        exported slots. ``next_seq`` is raised to the exported one."""
        ...

class CountStar(Aggregate):
    """COUNT(*) -> int64, never NULL. ``dtype`` is ignored; ``values`` and ``valid`` too."""

    def __init__(self, dtype: Any = ...) -> None: ...

class Count(Aggregate):
    """COUNT(x) -> int64, never NULL."""

class Sum(Aggregate):
    """SUM(x) -> int64 (exact; OutOfRangeError when the total leaves int64) or float64
    (Neumaier-compensated). NULL with no valid value."""

class Avg(Aggregate):
    """AVG(x) -> float64. NULL with no valid value."""

class Min(Aggregate):
    """MIN(x) -> input dtype; NaN sorts after every number. NULL with no valid value."""

class Max(Aggregate):
    """MAX(x) -> input dtype; NaN sorts after every number. NULL with no valid value."""

class TextMin(Aggregate):
    """MIN(x) of text: int64 codes of ``strings`` (the job's StringDict) in, the code of the
    smallest string by UTF-8 bytes out (DuckDB's VARCHAR order). NULL with no valid value."""

    def __init__(self, strings: Any) -> None: ...

class TextMax(TextMin):
    """MAX(x) of text; see ``TextMin``."""

class Variance(Aggregate):
    """VAR_SAMP (default), VAR_POP (``sample=False``), STDDEV_* (``sqrt=True``) -> float64."""

    def __init__(self, dtype: Any, sample: bool = True, sqrt: bool = False) -> None: ...
    @property
    def sample(self) -> bool: ...
    @property
    def sqrt(self) -> bool: ...

class CountDistinct(Aggregate):
    """COUNT(DISTINCT x) -> int64, exact; -0.0 == 0.0 and all NaNs are one value."""

class ApproxCountDistinct(CountDistinct):
    """APPROX_COUNT_DISTINCT(x): answered exactly."""

class First(Aggregate):
    """FIRST_VALUE(x) -> input dtype: the earliest row's value (NULL if that value is NULL).
    A ``valid`` entry of 2 marks a row that is not input at all (it failed a FILTER): skipped."""

class Last(Aggregate):
    """LAST_VALUE(x) -> input dtype: the latest row's value (NULL if that value is NULL)."""

class Median(Aggregate):
    """MEDIAN(x) -> float64, exact (``quantile_cont(x, 0.5)``); NaN sorts last. With ``fraction``
    PERCENTILE_CONT (DuckDB's ``quantile_cont``), and with ``discrete`` PERCENTILE_DISC
    (``quantile_disc``: the value at index ceil(fraction N) - 1, as float64)."""

    def __init__(self, dtype: Any, fraction: float = 0.5, discrete: bool = False) -> None: ...
    @property
    def fraction(self) -> float: ...
    @property
    def discrete(self) -> bool: ...

COVARIANCE_KINDS: tuple[str, ...]

class Covariance(Aggregate):
    """COVAR_POP / COVAR_SAMP / CORR / REGR_SLOPE / REGR_INTERCEPT / REGR_R2 (``kind``) of (y, x)
    float64 pairs: ``values`` is an (n, 2) array, column 0 y. Float64, DuckDB's NULLs and NaNs."""

    def __init__(self, kind: str) -> None: ...
    @property
    def kind_name(self) -> str: ...

class ArgMin(Aggregate):
    """ARG_MIN(arg, val): ``values`` an (n, 2) int64 array of words (float64 bit patterns, string
    codes): column 0 arg, column 1 val compared as ``val_kind`` ('int', 'float' with NaN last,
    'text' by bytes through ``strings``). Ties keep the earliest row (``seq``), across merges."""

    def __init__(self, arg_dtype: Any, val_kind: str, strings: Any = None) -> None: ...

class ArgMax(ArgMin):
    """ARG_MAX(arg, val); see ``ArgMin``."""

class StringAgg(Aggregate):
    """STRING_AGG(x, separator): int64 codes of ``strings`` in; the codes of the joined strings
    (added to ``strings``) out, NULL for a slot without values. Arrival order (``seq``)."""

    def __init__(self, strings: Any, separator: str = ",") -> None: ...
    @property
    def sep(self) -> str: ...
    def result_text(self, slots: _Slots) -> Any:
        """The joined strings as a pa.string() array, not added to ``strings``."""
    def update_emit_text(self, slots: _Slots, values: np.ndarray,
                         valid: Optional[np.ndarray], seq: Optional[np.ndarray] = None) -> Any:
        """``update``, returning each row's joined string right after it as a pa.string() array."""
