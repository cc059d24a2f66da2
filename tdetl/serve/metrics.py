"""``/metrics`` in Prometheus' text format, by its conventions: per task counters summed over every
run (they do not reset when a task runs again; Prometheus computes rates), the unit before
``_total``, restarts, state, lag and the time of the last successful run; the service's build and
process. Rendered by prometheus-client from a collector (no global registry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ..version import __version__
from .store import STATES
from .supervisor import Supervisor

# counter (Summary field) -> metric name without _total, help
_COUNTERS = (("rows_read", "tdetl_task_rows_read", "rows the source handed over"),
             ("rows_written", "tdetl_task_rows_written", "rows written to the target"),
             ("rows_failed", "tdetl_task_rows_failed", "rows a strategy took out (drop, archive, skip)"),
             ("rows_filtered", "tdetl_task_rows_filtered", "rows a parser filter removed"),
             ("bytes_written", "tdetl_task_written_bytes", "bytes written (Arrow memory of the batches)"),
             ("batches_written", "tdetl_task_batches_written", "batches handed to the target"))
LABELS = ["task", "name"]


class TaskCollector(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor

    def collect(self) -> Iterator[Any]:
        tasks = self.sup.store.all()
        fams = {k: CounterMetricFamily(name, f"{h}, over every run of the task", labels=LABELS)
                for k, name, h in _COUNTERS}
        lags = {"offsets": GaugeMetricFamily("tdetl_task_lag_offsets", "offsets the source is behind its newest"
                                             " data (Kafka: messages; TMQ: WAL entries)", labels=LABELS),
                "seconds": GaugeMetricFamily("tdetl_task_lag_seconds", "how far a realtime query's reads trail the"
                                             " clock", labels=LABELS)}
        restarts = CounterMetricFamily("tdetl_task_restarts", "restarts after a failure", labels=LABELS)
        state = GaugeMetricFamily("tdetl_task_state", "1 for the task's current state", labels=[*LABELS, "state"])
        success = GaugeMetricFamily("tdetl_task_last_success_timestamp_seconds",
                                    "when a run of the task last ended with every row written", labels=LABELS)
        for t in tasks:
            labels = [t["id"], t["name"]]
            totals, st = self.sup.totals(t["id"]), self.sup.status(t["id"])
            for k, _, _ in _COUNTERS:
                fams[k].add_metric(labels, float(totals.get(k, 0)))
            restarts.add_metric(labels, float(t["restarts"]))
            if t["id"] in self.sup.children and st.get("lag") is not None and st.get("lag_unit") in lags:
                lags[st["lag_unit"]].add_metric(labels, float(st["lag"]))
            for s in STATES:
                state.add_metric([*labels, s], 1.0 if t["state"] == s else 0.0)
            when = self.sup.last_success(t["id"])
            if when is not None:
                success.add_metric(labels, when)
        yield from fams.values()
        yield from lags.values()
        yield restarts
        yield state
        yield success
        info = InfoMetricFamily("tdetl_build", "the tdetl that serves")
        info.add_metric([], {"version": __version__})
        yield info


def registry(supervisor: Supervisor) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(TaskCollector(supervisor))
    ProcessCollector(registry=reg)  # process_cpu_seconds_total, process_resident_memory_bytes, …
    PlatformCollector(registry=reg)
    return reg
