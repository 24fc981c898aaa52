"""Job coordination: V1 (one engine in the calling thread) and V2 (N partition threads)."""
from .coordinator import Job, JobStats, run_partitioned
from .failure import FailBatch, LogAndContinue, RetryWithBackoff, SendToDLQ
from .protocols import MemoryReader, MemoryWriter, Reader, Writer

__all__ = ["FailBatch", "Job", "JobStats", "LogAndContinue", "MemoryReader", "MemoryWriter",
           "Reader", "RetryWithBackoff", "SendToDLQ", "Writer", "run_partitioned"]
