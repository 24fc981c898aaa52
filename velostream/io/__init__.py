"""Sources and sinks: files (CSV, JSON lines, Parquet, Arrow IPC; local or on S3), Kafka, stdout,
and dead-letter outputs.

``open_source`` / ``open_sink`` / ``open_dead_letter`` build them from a job file's properties
(see ``velostream.jobs.spec``). Kafka support needs the ``kafka`` extra (confluent-kafka); it is
imported only when a job uses it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .base import ConfigError, Properties, Reject

if TYPE_CHECKING:
    from ..jobs.spec import JobSpec

__all__ = ["ConfigError", "Properties", "Reject", "open_dead_letter", "open_sink", "open_source"]


def _kafka():
    try:
        from . import kafka
    except ImportError as exc:
        raise ConfigError("Kafka sources and sinks need confluent-kafka: "
                          "pip install 'velostream[kafka]'") from exc
    return kafka


def open_source(spec: "JobSpec", *, bounded: bool = False):
    """The job's source as a Reader. ``bounded``: a Kafka source stops at the end offsets it saw
    at start (a file source always ends at the end of its files)."""
    t = spec.source_type
    if t is None:
        raise ConfigError(f"no source type: add '{spec.source_name}.type' = 'kafka_source' or "
                          f"'file_source' to the WITH properties")
    if t == "file_source":
        from .datasets import file_format
        if file_format(spec.source_name, spec.source) in ("parquet", "arrow"):
            return _dataset_source(spec)
        from .files import FileSource
        return FileSource(spec.source_name, spec.source)
    as_table = spec.source_name.lower() in getattr(spec, "table_sources", ())
    return _kafka().KafkaSource(spec.source_name, spec.source, bounded=bounded, as_table=as_table)


def _dataset_source(spec: "JobSpec"):
    """A Parquet / Arrow IPC source decoding only the columns the job's query reads."""
    from .datasets import DatasetSource, columns_needed
    src = DatasetSource(spec.source_name, spec.source)
    src.project(columns_needed(spec, src.schema))
    return src


def open_sink(spec: "JobSpec"):
    """The job's sink as a Writer (stdout when the job names none)."""
    t = spec.sink_type
    if t == "stdout":
        from .files import StdoutSink
        return StdoutSink(spec.sink.name, spec.sink)
    if t == "file_sink":
        from .datasets import file_format
        fmt = file_format(spec.sink.name, spec.sink, sink=True)
        if fmt in ("parquet", "arrow"):
            from .columnar_sink import ColumnarFileSink
            return ColumnarFileSink(spec.sink.name, spec.sink, fmt)
        from .files import FileSink
        return FileSink(spec.sink.name, spec.sink)
    return _kafka().KafkaSink(spec.sink.name, spec.sink, spec.key_columns)


def open_dead_letter(spec: "JobSpec"):
    """Where rejected records and failed rows go: ``dead.letter.path`` (JSON lines) or
    ``dead.letter.topic`` (Kafka), or None."""
    path = spec.job.get("dead.letter.path")
    topic = spec.job.get("dead.letter.topic")
    if path and topic:
        raise ConfigError("give dead.letter.path or dead.letter.topic, not both")
    if path:
        from .files import DeadLetterFile
        return DeadLetterFile(path)
    if topic:
        servers: Optional[str] = (spec.job.get("dead.letter.bootstrap.servers")
                                  or spec.source.values.get("bootstrap.servers")
                                  or spec.sink.values.get("bootstrap.servers"))
        if not servers:
            raise ConfigError("dead.letter.topic needs dead.letter.bootstrap.servers (or a Kafka "
                              "source or sink to borrow them from)")
        return _kafka().KafkaDeadLetter(servers, topic)
    return None
