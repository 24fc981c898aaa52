"""Prometheus metrics of a running job (``velostream run --metrics-port P``).

Values are read from the job at scrape time (a custom collector), so the hot path does no
metrics work at all: it only keeps the counters it keeps anyway (``JobStats``).
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from .jobs.coordinator import Job


class JobCollector:
    """Exposes one job's counters, rates, lag, queue depths and latency quantiles."""

    def __init__(self, job: "Job", name: str):
        self.job = job
        self.name = name
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

        def counter(name, doc, value):
            c = CounterMetricFamily(f"velostream_{name}", doc, labels=labels)
            c.add_metric(v, value)
            return c

        def gauge(name, doc, value):
            g = GaugeMetricFamily(f"velostream_{name}", doc, labels=labels)
            g.add_metric(v, value)
            return g

        yield counter("records_in", "Input records read", s.records_read)
        yield counter("records_out", "Result rows written to the sink", s.records_emitted)
        yield counter("records_failed", "Records that failed (bad input, undeliverable rows)",
                      s.records_failed)
        yield counter("records_rejected", "Bad input records (undecodable, wrong types)",
                      s.records_rejected)
        yield counter("records_late", "Records that arrived after their windows closed",
                      s.records_late)
        yield counter("commits", "Sink + source commits", s.commits)
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
        # quantiles of a rolling sample, as gauges: a summary's _count/_sum of a rolling sample
        # could go down, which breaks rate()
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


def serve(job: "Job", port: int, name: str = "velostream", addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``/metrics`` for ``job`` on ``addr:port`` in a thread; ``stop()`` the result when
    the job ends."""
    registry = CollectorRegistry()
    registry.register(JobCollector(job, name))
    httpd, thread = start_http_server(port, addr=addr, registry=registry)
    thread.name = "velostream-metrics"
    return MetricsServer(httpd, thread)
