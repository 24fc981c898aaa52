"""Key encoding: how GROUP BY / PARTITION BY / join key values become the int64 words of a
``GroupTable`` (``_core/group_table.pyx``), and back. Every stateful operator keys its state
this way, and the router hashes the same words, so a key lands in one partition."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..batch import Column, SqlType, StringDict


def key_words(col: Column) -> np.ndarray:
    """A 64-bit key column as int64 words (NULL rows become 0; the null mask is a word apart)."""
    t = col.type.kind
    v = col.values
    if t == "FLOAT64":
        v = v + 0.0  # -0.0 -> 0.0 so equal keys have equal bits
        v[np.isnan(v)] = np.nan  # one NaN bit pattern
        w = v.view(np.int64)
    else:
        w = v.astype(np.int64, copy=False)
    valid = col.valid
    if valid is not None:
        w = np.where(valid, w, 0)
    return np.ascontiguousarray(w, dtype=np.int64)


def _narrow32(col: Column) -> np.ndarray:
    """A 32-bit key as int32 with NULL as -1."""
    v = col.values
    if col.valid is not None:
        v = np.where(col.valid, v, -1)
    return v


def _narrow(col: Column) -> np.ndarray:
    """A 32-bit key (string code, bool) as int64 with NULL as -1 (codes are never negative)."""
    w = col.values.astype(np.int64)
    if col.valid is not None:
        w[~col.valid] = -1
    return w


class KeyCodec:
    """How GROUP BY / PARTITION BY values become group-table words, and back.

    Fewer words make hashing and comparing cheaper, so 32-bit keys (string codes, booleans) are
    packed two to a word with NULL encoded as -1; 64-bit keys (integers, floats, timestamps,
    decimals) take a word each, plus one word of NULL bits. A query without keys uses one
    constant word.
    """

    def __init__(self, types: list[SqlType]):
        self.types = types
        narrow = [i for i, t in enumerate(types) if t.kind in ("STRING", "BOOL")]
        wide = [i for i, t in enumerate(types) if t.kind not in ("STRING", "BOOL")]
        self.layout: list[tuple] = [("pair", a, b) for a, b in zip(narrow[0::2], narrow[1::2])]
        if len(narrow) % 2:
            self.layout.append(("narrow", narrow[-1]))
        self.layout += [("wide", i) for i in wide]
        self.wide = wide
        if not self.layout:
            self.layout.append(("zero",))
        self.n_words = len(self.layout) + (1 if wide else 0)

    def encode(self, cols: list[Column], n: int) -> list[np.ndarray]:
        words = []
        for item in self.layout:
            kind = item[0]
            if kind == "pair":  # hi in the upper 32 bits, lo in the lower (little-endian layout)
                pair = np.empty(2 * n, dtype=np.int32)
                pair[0::2] = _narrow32(cols[item[2]])
                pair[1::2] = _narrow32(cols[item[1]])
                words.append(pair.view(np.int64))
            elif kind == "narrow":
                words.append(_narrow(cols[item[1]]))
            elif kind == "wide":
                words.append(key_words(cols[item[1]]))
            else:
                words.append(np.zeros(n, dtype=np.int64))
        if self.wide:
            nulls = np.zeros(n, dtype=np.int64)
            for bit, i in enumerate(self.wide):
                if cols[i].valid is not None:
                    nulls |= (~cols[i].valid).astype(np.int64) << bit
            words.append(nulls)
        return words

    def decode(self, words: np.ndarray, strings: StringDict) -> list[Column]:
        """Key columns from stored words (``words``: shape (n, >= n_words))."""
        out: list[Optional[Column]] = [None] * len(self.types)
        nulls = words[:, len(self.layout)] if self.wide else None
        for w, item in enumerate(self.layout):
            col = words[:, w]
            if item[0] == "pair":  # the two int32 halves as strided views: no shifts or masks
                halves = np.ascontiguousarray(col).view(np.int32)
                no_nulls = bool((halves >= 0).all())  # one contiguous pass checks both keys
                out[item[1]] = self._narrow_col(halves[1::2], item[1], strings, no_nulls)
                out[item[2]] = self._narrow_col(halves[0::2], item[2], strings, no_nulls)
            elif item[0] == "narrow":
                out[item[1]] = self._narrow_col(col, item[1], strings)
            elif item[0] == "wide":
                i = item[1]
                t = self.types[i]
                v = np.ascontiguousarray(col)
                if t.kind == "FLOAT64":
                    v = v.view(np.float64)
                valid = ((nulls >> self.wide.index(i)) & 1) == 0
                out[i] = Column(t, v, None if valid.all() else valid, strings=strings)
        return out

    def _narrow_col(self, v: np.ndarray, i: int, strings: StringDict,
                    no_nulls: bool = False) -> Column:
        t = self.types[i]
        valid = None if no_nulls else v >= 0
        if valid is not None and valid.all():  # the usual case: no NULL keys, so no select
            valid = None
        if valid is not None:
            v = np.where(valid, v, 0)
        v = v.astype(bool) if t.kind == "BOOL" else v.astype(np.int32)
        return Column(t, v, valid, strings=strings)
