"""Execution: expression evaluation and the per-partition pipeline."""
