"""``pyarrow.compute``, imported the first time one of its names is used.

Importing ``pyarrow.compute`` costs ~25 ms of CPU: it generates a Python wrapper, with its
docstring, for each of Arrow's kernels. Every start of ``velostream run`` paid it, although a job
that never calls a kernel from Python (Parquet to Parquet: the reader, the compiled kernels and
the writer) needs none of it (docs/PERFORMANCE.md, "File to file start-up"). The modules say
``from ._lazy import pc`` and use ``pc.<name>`` as before. The first name looked up imports the
module and copies all its names onto the stand-in, so that every later look-up is an ordinary
attribute read, as on the module itself.

``call_function`` calls a kernel by its Arrow name (as ``pyarrow.compute.call_function`` does)
from ``pyarrow._compute``, the compiled half of the module (4 ms to import): for a hot path that
needs one kernel and would otherwise import the whole module for it.
"""
from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """A stand-in for a module that imports it when one of its names is first looked up."""

    def __init__(self, name: str):
        self.__dict__["_lazy_module_name"] = name

    def __getattr__(self, attr: str) -> Any:  # only called for names not copied yet
        module = importlib.import_module(self.__dict__["_lazy_module_name"])
        self.__dict__.update(vars(module))
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazily imported module {self.__dict__['_lazy_module_name']!r}>"


pc = LazyModule("pyarrow.compute")


def call_function(name: str, args: list, options: Any = None) -> Any:
    """``pyarrow.compute.call_function(name, args, options)`` without importing
    ``pyarrow.compute``'s generated wrappers (when nothing else has imported them yet)."""
    try:
        from pyarrow._compute import call_function as call
    except ImportError:  # a pyarrow that lays out its modules differently: the public one
        from pyarrow.compute import call_function as call
    return call(name, args, options)
