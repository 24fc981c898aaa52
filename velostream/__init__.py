"""velostream: streaming SQL over event streams, with compiled (Cython, nogil) hot paths.

>>> import velostream as vs
>>> vs.query("SELECT x FROM s WHERE x > 1", {"s": {"x": [1, 2, 3]}}).to_pylist()
[{'x': 2}, {'x': 3}]
"""
import gc as _gc
import os as _os
import sys as _sys

# ``python -m velostream`` (``sys.argv[0]`` is "-m" until its ``__main__`` runs) and the
# ``velostream`` command import the package for the command itself: the cyclic garbage collector
# is paused while the package and its dependencies (numpy, pyarrow) are imported, and what they
# made is frozen afterwards (never looked at by a collection again). An import makes hundreds of
# thousands of objects, none of them garbage, that the collector would otherwise go over some
# seventy times: 10-30 ms of every start of ``velostream run`` (docs/PERFORMANCE.md, "File to
# file"). A program importing velostream is left alone.
_program = _sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] if _sys.argv else ""
_command = _gc.isenabled() and _program in ("-m", "velostream", "velostream.exe")
# The command also keeps numpy's OpenBLAS (which velostream never calls) from starting its
# thread pool: each of its threads spins for ~0.1 s of CPU after the import, on a machine whose
# cores the job's own threads want (50 ms of the import of numpy, and ~140 ms of CPU, on two
# cores: docs/PERFORMANCE.md, "File to file start-up"). ``OPENBLAS_NUM_THREADS`` is read once,
# when numpy loads OpenBLAS; a value the user set is kept, and the variable is removed again
# afterwards so that programs the command starts see the environment it was given.
_blas_threads = _command and "numpy" not in _sys.modules and "OPENBLAS_NUM_THREADS" not in _os.environ
if _command:
    _gc.disable()
if _blas_threads:
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
try:
    from . import _malloc  # noqa: F401  (allocator thresholds: see the module)
    from .api import Engine, explain, query
    from .errors import (DroppedRowsWarning, JobError, SchemaMismatch, SqlError, UnsupportedError,
                         VelostreamError)
    from .jobs import (FailBatch, Job, JobStats, LogAndContinue, MemoryReader, MemoryWriter,
                       RetryWithBackoff, SendToDLQ)
    from .result import Result
    from .udf import udaf, udf
finally:
    if _blas_threads:
        _os.environ.pop("OPENBLAS_NUM_THREADS", None)
    if _command:
        _gc.freeze()
        _gc.enable()

__version__ = "0.1.0"
__all__ = ["DroppedRowsWarning", "Engine", "FailBatch", "Job", "JobError", "JobStats", "LogAndContinue", "MemoryReader",
           "MemoryWriter", "Result", "RetryWithBackoff", "SchemaMismatch", "SendToDLQ", "SqlError",
           "UnsupportedError", "VelostreamError", "explain", "query", "udaf", "udf",
           "__version__"]
