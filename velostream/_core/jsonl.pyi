import numpy as np

KIND_INT64: int
KIND_FLOAT64: int
KIND_BOOL: int
KIND_STRING: int

ERR_EMPTY: int
ERR_SYNTAX: int
ERR_UTF8: int
ERR_NOT_OBJECT: int
ERR_WRONG_TYPE: int
ERR_INT_OVERFLOW: int
ERR_NUMBER_RANGE: int
ERR_MISSING: int
ERR_TOO_DEEP: int

MAX_DEPTH: int

def decode_flat_lines(
    buf: bytes,
    field_names: list[str],
    kinds: np.ndarray,
    required: np.ndarray | None = None,
    payloads: bool = False,
) -> dict:
    """Newline-delimited flat JSON objects -> columns (one nogil pass).

    Keys of the result: ``rows``, ``records``, ``columns`` (per field ``(values, valid)`` or, for
    STRING, ``(int32 offsets, buffer-protocol bytes, valid)``), ``bad_line``, ``bad_record``,
    ``bad_start``, ``bad_end``, ``bad_code``, ``bad_field``, ``nonstring``, ``fixup_row``,
    ``fixup_field``.
    """
    ...

def utf8_invalid_offset(buf: bytes) -> int:
    """The offset of the first byte of ``buf`` that is not part of well-formed UTF-8, or -1."""
    ...
