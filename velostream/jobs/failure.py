"""Failure strategies: what a job does with bad records and with a sink that fails.

Nothing is lost silently: every failed record is counted in the job's stats and kept, with its
error, in the dead-letter output (``Job.dead_letters``, or the configured dead-letter writer).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogAndContinue:
    """The default: log the failure, send the records to the dead-letter output, go on."""
    name = "LogAndContinue"


@dataclass(frozen=True)
class SendToDLQ:
    """Like LogAndContinue, but a dead-letter writer is required (the job refuses to start
    without one), so failed records always land somewhere durable."""
    name = "SendToDLQ"


@dataclass(frozen=True)
class FailBatch:
    """Roll the sink back and fail the job with the cause."""
    name = "FailBatch"


@dataclass(frozen=True)
class RetryWithBackoff:
    """Retry the failed write up to ``max_retries`` times, sleeping ``base_delay_s * 2**k``;
    then fail the job like FailBatch."""
    max_retries: int = 3
    base_delay_s: float = 0.01
    name = "RetryWithBackoff"

    def delays(self):
        for k in range(self.max_retries):
            yield self.base_delay_s * (2 ** k)


def parse_strategy(value) -> object:
    """A strategy object from itself or its name (``'FailBatch'``, ``'RetryWithBackoff'``...)."""
    if value is None:
        return LogAndContinue()
    if not isinstance(value, str):
        return value
    key = value.replace("_", "").replace("-", "").lower()
    for cls in (LogAndContinue, SendToDLQ, FailBatch, RetryWithBackoff):
        if cls.name.lower() == key:
            return cls()
    raise ValueError(f"unknown failure strategy {value!r} (LogAndContinue, SendToDLQ, FailBatch, "
                     "RetryWithBackoff)")
