"""Prometheus metrics of a running job (``velostream run --metrics-port P``), documented in
docs/CLI.md ("Metrics").

Counters and gauges are read from the job at scrape time (a custom collector), so the hot path
does no metrics work for them: it only keeps the counters it keeps anyway (``JobStats``). The
latency histogram is fed as rows are written: one bisect per written batch, not per row.
"""
from __future__ import annotations

import bisect
import threading
import time
from typing import TYPE_CHECKING, Optional

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

if TYPE_CHECKING:
    from .jobs.coordinator import Job

#: upper bounds (seconds) of the latency histogram's buckets: a millisecond to a minute, the
#: range between a micro-batch written at once and a window held open for its lateness
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)


class LatencyHistogram:
    """Rows by the latency of the batch that caused them (arrival of an input batch to the write
    of its rows): cumulative, so ``rate()`` and ``histogram_quantile()`` work, and weighted by rows
    as ``Job.latency_quantiles`` is."""

    def __init__(self, bounds=LATENCY_BUCKETS):
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float, rows: int = 1) -> None:
        i = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[i] += rows
            self._sum += seconds * rows

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """(cumulative buckets as (le, count) with +Inf last, sum of seconds x rows)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out, acc = [], 0
        for bound, c in zip(self.bounds + (float("inf"),), counts):
            acc += c
            out.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        return out, total


def _observe_latencies(job: "Job", histogram: LatencyHistogram) -> None:
    """Feed ``histogram`` from every delivery of the job (``Job.latency_listeners``)."""
    listeners = getattr(job, "latency_listeners", None)
    if listeners is not None:
        listeners.append(histogram.observe)


def _partition_records(job: "Job") -> list[int]:
    """Records each partition thread processed so far (one partition: everything read)."""
    fn = getattr(job, "partition_records", None)
    return fn() if fn is not None else [job.stats.records_read]


class JobCollector:
    """Exposes one job's counters, rates, lag, queue depths and latency."""

    def __init__(self, job: "Job", name: str, source: Optional[str] = None,
                 sink: Optional[str] = None, latency: Optional[LatencyHistogram] = None):
        self.job = job
        self.name = name
        self.source = source or getattr(getattr(job, "engine", None), "source", None) or "input"
        self.sink = sink or getattr(job.sink, "name", None) or "output"
        self.latency = latency
        self._lock = threading.Lock()
        self._last = (time.monotonic(), 0)
        self._rate = 0.0

    def _throughput(self, total: int) -> float:
        """Records/s since the previous scrape (or the last second, whichever is longer)."""
        with self._lock:
            now = time.monotonic()
            t0, n0 = self._last
            if now - t0 >= 1.0:
                self._rate = (total - n0) / (now - t0)
                self._last = (now, total)
            return self._rate

    def collect(self):
        job, s = self.job, self.job.stats
        labels = ["job"]
        v = [self.name]

        def counter(name, doc, value, **extra):
            c = CounterMetricFamily(f"velostream_{name}", doc, labels=labels + list(extra))
            c.add_metric(v + list(extra.values()), value)
            return c

        def gauge(name, doc, value):
            g = GaugeMetricFamily(f"velostream_{name}", doc, labels=labels)
            g.add_metric(v, value)
            return g

        yield counter("records_in", "Input records read", s.records_read, source=self.source)
        yield counter("records_out", "Result rows written to the sink", s.records_emitted,
                      sink=self.sink)
        yield counter("records_failed", "Records that failed (bad input, undeliverable rows)",
                      s.records_failed)
        yield counter("records_rejected", "Bad input records (undecodable, wrong types)",
                      s.records_rejected, source=self.source)
        yield counter("records_late", "Records that arrived after their windows closed",
                      s.records_late)
        yield counter("commits", "Sink + source commits", s.commits)
        per_partition = CounterMetricFamily("velostream_partition_records",
                                            "Input records each partition thread processed",
                                            labels=labels + ["partition"])
        for i, n in enumerate(_partition_records(job)):
            per_partition.add_metric(v + [str(i)], n)
        yield per_partition
        yield gauge("throughput_records_per_second", "Input records per second, recent",
                    self._throughput(s.records_read))
        lag = job.lag()
        if lag is not None:
            yield gauge("consumer_lag", "Messages between the consumer position and the end of "
                                        "the assigned partitions", lag)
        depth = GaugeMetricFamily("velostream_partition_queue_depth",
                                  "Steps waiting in each partition thread's queue",
                                  labels=labels + ["partition"])
        for i, d in enumerate(job.queue_depths()):
            depth.add_metric(v + [str(i)], d)
        yield depth
        if self.latency is not None:
            h = HistogramMetricFamily("velostream_latency_seconds",
                                      "Arrival of an input batch to the write of the rows it "
                                      "caused, counted in rows", labels=labels)
            buckets, total = self.latency.snapshot()
            h.add_metric(v, buckets, total)
            yield h
        # quantiles of a rolling sample, as gauges: a summary's _count/_sum of a rolling sample
        # could go down, which breaks rate(); the histogram above is what to aggregate
        q = GaugeMetricFamily("velostream_latency_quantile_seconds",
                              "Arrival of a batch to the write of the rows it caused: quantiles "
                              "of the recent sample", labels=labels + ["quantile"])
        for k, secs in job.latency_quantiles().items():
            q.add_metric(v + [k], secs)
        yield q
        runner = getattr(job, "runner", None)
        if runner is not None:  # partition-scoped state (Kafka with fault tolerance)
            yield gauge("source_partitions_assigned", "Source partitions this process owns",
                        len(runner.tasks))
            yield counter("checkpoints_restored", "Source partitions resumed from a checkpoint",
                          runner.restored)


class MetricsServer:
    """The ``/metrics`` endpoint of a job, served by its own thread until ``stop()``."""

    def __init__(self, httpd, thread: threading.Thread):
        self.httpd = httpd
        self.thread = thread
        self.port = httpd.server_address[1]

    def stop(self) -> None:
        """End the serving thread and free the port (the job's end must leave no thread behind)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(job: "Job", port: int, name: str = "velostream", addr: str = "127.0.0.1",
          source: Optional[str] = None, sink: Optional[str] = None) -> MetricsServer:
    """Serve ``/metrics`` for ``job`` on ``addr:port`` in a thread; ``stop()`` the result when
    the job ends. ``source`` / ``sink``: the connectors' names for the ``source`` and ``sink``
    labels (default: the query's FROM name and the sink's ``name``). Also exposes the process's
    CPU, memory and file descriptors (prometheus_client's ``process_*`` metrics)."""
    registry = CollectorRegistry()
    latency = LatencyHistogram()
    _observe_latencies(job, latency)
    registry.register(JobCollector(job, name, source=source, sink=sink, latency=latency))
    ProcessCollector(registry=registry)
    httpd, thread = start_http_server(port, addr=addr, registry=registry)
    thread.name = "velostream-metrics"
    return MetricsServer(httpd, thread)
