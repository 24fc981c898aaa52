"""Execution: expressions, the function table, the operators of a SELECT and a pipeline's graph."""
# The function table registers itself with the expression binder and evaluator it builds on.
from . import functions  # noqa: F401
