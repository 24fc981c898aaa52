"""Type stub of the compiled ``velostream._core.session`` module."""
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_I32: TypeAlias = npt.NDArray[np.int32]
_I64: TypeAlias = npt.NDArray[np.int64]

class SessionWindows:
    """Per-key session windows: assigns each row a dense session id, tracks merges and closes."""

    gap_ms: int
    """Session gap in ms (read-only)."""

    def __init__(self, gap_ms: int) -> None: ...
    @property
    def n_open(self) -> int:
        """Sessions not yet returned by close() / close_all()."""
    @property
    def sid_capacity(self) -> int:
        """1 + the largest sid ever handed out: the size aggregate state arrays need."""
    def assign(
        self,
        key_slots: _I32,
        times: _I64,
        wm: _I64,
        out_sid: _I32,
        out_start: _I64,
        out_end: _I64,
        start: int,
    ) -> tuple[int, _I32]:
        """Assign rows from ``start``; returns ``(end, merges)``, merges of shape ``(m, 2)``
        holding ``(dst, src)`` pairs of row ``end - 1`` (empty when ``end == len(key_slots)``)."""
    def close(self, watermark: int) -> tuple[_I32, _I32, _I64, _I64]:
        """``(sids, key_slots, starts, ends)`` of every session with ``end <= watermark``,
        sorted by end then start; the sids stay reserved until release()."""
    def close_all(self) -> tuple[_I32, _I32, _I64, _I64]:
        """Close every open session (end of input)."""
    def release(self, sids: _I32) -> None:
        """Make closed sids available for reuse."""
    def export_state(self) -> dict[str, npt.NDArray[np.generic]]:
        """Open sessions (``sid``, ``key_slot``, ``first``, ``last``, ``expired``) in close()
        order, ``free_sids`` in reuse order and ``sid_capacity``, as numpy arrays."""
    def import_state(self, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
        """Load ``export_state`` arrays (key slots of this process) into a fresh instance."""
