"""Jobs: one run loop from readers to writers, over an exchange (one engine in the job's thread,
N partition threads, or one engine per source partition); see docs/ARCHITECTURE.md."""
from .coordinator import Job, JobStats, run_partitioned
from .failure import FailBatch, LogAndContinue, RetryWithBackoff, SendToDLQ
from .protocols import MemoryReader, MemoryWriter, Reader, Writer

__all__ = ["FailBatch", "Job", "JobStats", "LogAndContinue", "MemoryReader", "MemoryWriter",
           "Reader", "RetryWithBackoff", "SendToDLQ", "Writer", "run_partitioned"]
