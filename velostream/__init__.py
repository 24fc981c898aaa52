"""velostream: streaming SQL over event streams, with compiled (Cython, nogil) hot paths.

>>> import velostream as vs
>>> vs.query("SELECT x FROM s WHERE x > 1", {"s": {"x": [1, 2, 3]}}).to_pylist()
[{'x': 2}, {'x': 3}]
"""
from . import _malloc  # noqa: F401  (allocator thresholds: see the module)
from .api import Engine, explain, query
from .errors import JobError, SchemaMismatch, SqlError, UnsupportedError, VelostreamError
from .jobs import (FailBatch, Job, JobStats, LogAndContinue, MemoryReader, MemoryWriter,
                   RetryWithBackoff, SendToDLQ)
from .result import Result
from .udf import udaf, udf

__version__ = "0.1.0"
__all__ = ["Engine", "FailBatch", "Job", "JobError", "JobStats", "LogAndContinue", "MemoryReader",
           "MemoryWriter", "Result", "RetryWithBackoff", "SchemaMismatch", "SendToDLQ", "SqlError",
           "UnsupportedError", "VelostreamError", "explain", "query", "udaf", "udf",
           "__version__"]
