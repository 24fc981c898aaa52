"""The system columns a batch carries inside a job, beside the query's own columns.

Time is decided outside the operators: the job stamps each input row with ``__time`` (event time)
and ``__wm`` (the job's watermark just before that row, docs/SQL.md §3) before routing, and tells
every partition the watermark after each batch. That is what makes results independent of the
partition count, and of how the input was cut into batches.
"""
import numpy as np

TIME_COL = "__time"
WM_COL = "__wm"
SEQ_COL = "__seq"   # the record's position in the job's input (V2 two-phase FIRST/LAST order)
END_COL = "__end"   # window end of an EMIT FINAL row, for ordering rows across partitions
# a windowed row's position in the batch it was split from (or in the job's routed input): a row
# a partition sets aside (late) is given back whole, every input column, where it was split
ROW_COL = "__row"
INT64_MIN = int(np.iinfo(np.int64).min)


def may_be_late(batch) -> bool:
    """Whether a row of a stamped batch can be late: every window holding a time ``t`` ends
    after ``t``, so only a row whose time is below its watermark can find them all closed. One
    vectorised compare; a batch in time order (the usual stream) never needs ROW_COL."""
    t, wm = batch.columns.get(TIME_COL), batch.columns.get(WM_COL)
    return t is not None and wm is not None and bool((t.values < wm.values).any())
