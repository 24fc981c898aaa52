"""Window assignment: which windows each row belongs to (docs/SQL.md §4 and §10).

The configuration is the plan's ``WindowPlan``; an assigner here is its logic, with no state:
the aggregate that uses it holds the open windows (as Bytewax separates a Windower from its
WindowerLogic). Each (row, window) pair gets one int64 *window word*, the last word of its group
key in the aggregate's group table. The word is the window's start for tumbling and hopping
windows and its end for cumulating windows (several of which share a start); ``start_of`` and
``end_of`` read a word back.

A new window kind is one class here with ``assign``, ``start_of``, ``end_of``, ``first_end``,
``last_end`` and ``step``, and one line in ``assigner_for``. SESSION windows are not assigned per row: they
merge, so they are their own operator (``session_window.py``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..._core.window import tumbling_starts


class TumblingWindows:
    """Fixed windows ``[k * size, (k + 1) * size)``: one per row."""

    word_name = "__window_start"  # the word's column in a snapshot

    def __init__(self, size_ms: int):
        self.size = size_ms
        self.step = size_ms or 1  # window ends are multiples of this (cheap to sort)

    def assign(self, t: np.ndarray, wm: np.ndarray) -> tuple[Optional[np.ndarray], np.ndarray]:
        """(row index of each pair, or None for one pair per row in order; window words) of the
        windows still open (end > the row's watermark ``wm``); a row with none is late."""
        ws = np.empty(len(t), dtype=np.int64)
        late, _ = tumbling_starts(np.ascontiguousarray(t, dtype=np.int64),
                                  np.ascontiguousarray(wm, dtype=np.int64), self.size, ws)
        if not late:
            return None, ws
        rows = np.flatnonzero(ws + self.size > wm)
        return rows, ws[rows]

    def start_of(self, words: np.ndarray) -> np.ndarray:
        return words

    def end_of(self, words: np.ndarray) -> np.ndarray:
        return words + self.size

    def first_end(self, words: np.ndarray) -> int:
        """The earliest end among these windows (without an array of every end)."""
        return int(words.min()) + self.size

    def last_end(self, t: np.ndarray) -> np.ndarray:
        """The end of the last window a row at time ``t`` belongs to."""
        return np.floor_divide(t, self.step) * self.step + self.size


class HoppingWindows(TumblingWindows):
    """Windows of ``size`` starting every ``advance`` (SLIDING / HOP): a row is in
    ``ceil(size / advance)`` of them."""

    def __init__(self, size_ms: int, advance_ms: int):
        super().__init__(size_ms)
        self.step = advance_ms

    def assign(self, t, wm):
        size, adv = self.size, self.step
        k = -(-size // adv)  # windows a record can belong to
        last = (t // adv) * adv  # the latest window start <= t
        n = len(t)
        rows = np.repeat(np.arange(n), k)
        ws = np.repeat(last, k) - np.tile(np.arange(k, dtype=np.int64) * adv, n)
        keep = (ws + size > np.repeat(t, k)) & (ws + size > np.repeat(wm, k))
        return rows[keep], ws[keep]


class CumulatingWindows:
    """Flink's CUMULATE: windows that start at ``k * size`` and grow by ``step`` up to ``size``:
    ``[k * size, k * size + step)``, ``[k * size, k * size + 2 * step)``, ... A row at ``t`` is in
    each of them that ends after ``t``. The window word is the end (windows share starts)."""

    word_name = "__window_end"

    def __init__(self, size_ms: int, step_ms: int):
        self.size, self.step = size_ms, step_ms

    def assign(self, t, wm):
        size, step = self.size, self.step
        t = np.asarray(t, dtype=np.int64)
        start = np.floor_divide(t, size) * size
        first = (t - start) // step + 1  # the first window (by step count) holding t
        count = size // step - first + 1
        rows = np.repeat(np.arange(len(t)), count)
        before = np.cumsum(count) - count
        k = np.arange(len(rows), dtype=np.int64) - np.repeat(before, count)
        ends = np.repeat(start + first * step, count) + k * step
        keep = ends > np.repeat(np.asarray(wm, dtype=np.int64), count)
        return rows[keep], ends[keep]

    def start_of(self, words: np.ndarray) -> np.ndarray:
        return np.floor_divide(words - 1, self.size) * self.size

    def end_of(self, words: np.ndarray) -> np.ndarray:
        return words

    def first_end(self, words: np.ndarray) -> int:
        return int(words.min())

    def last_end(self, t: np.ndarray) -> np.ndarray:
        return np.floor_divide(t, self.size) * self.size + self.size


def assigner_for(window):
    """The assigner of a TUMBLING / SLIDING / CUMULATE ``WindowPlan`` (None otherwise)."""
    if window is None:
        return None
    if window.kind == "TUMBLING":
        return TumblingWindows(window.size_ms)
    if window.kind == "SLIDING":
        return HoppingWindows(window.size_ms, window.advance_ms)
    if window.kind == "CUMULATE":
        return CumulatingWindows(window.size_ms, window.advance_ms)
    return None
