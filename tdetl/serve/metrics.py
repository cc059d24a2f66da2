"""``/metrics`` in Prometheus' text format: per task the counters its process last wrote, its
restarts and its state, rendered by prometheus-client from a collector (no global registry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .store import STATES
from .supervisor import Supervisor

_COUNTERS = (("rows_read", "rows the source handed over"), ("rows_written", "rows written to the target"),
             ("rows_failed", "rows a strategy took out (drop, archive, skip)"),
             ("rows_filtered", "rows a parser filter removed"), ("bytes_written", "bytes written"),
             ("batches_written", "batches handed to the target"))


class TaskCollector(Collector):
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor

    def collect(self) -> Iterator[Any]:
        tasks = self.sup.store.all()
        fams = {k: CounterMetricFamily(f"tdetl_task_{k}", f"{h} (this run of the task)", labels=["task", "name"])
                for k, h in _COUNTERS}
        rate = GaugeMetricFamily("tdetl_task_rows_per_second", "rows written per second (this run)",
                                 labels=["task", "name"])
        lags = {"offsets": GaugeMetricFamily("tdetl_task_lag_offsets", "offsets the source is behind its newest"
                                             " data (Kafka: messages; TMQ: WAL entries)", labels=["task", "name"]),
                "seconds": GaugeMetricFamily("tdetl_task_lag_seconds", "how far a realtime query's reads trail the"
                                             " clock", labels=["task", "name"])}
        restarts = CounterMetricFamily("tdetl_task_restarts", "restarts after a failure", labels=["task", "name"])
        state = GaugeMetricFamily("tdetl_task_state", "1 for the task's current state",
                                  labels=["task", "name", "state"])
        for t in tasks:
            labels = [t["id"], t["name"]]
            st = self.sup.status(t["id"])
            for k, _ in _COUNTERS:
                fams[k].add_metric(labels, float(st.get(k, 0)))
            elapsed = float(st.get("elapsed") or 0)
            rate.add_metric(labels, float(st.get("rows_written", 0)) / elapsed if elapsed > 0 else 0.0)
            restarts.add_metric(labels, float(t["restarts"]))
            if st.get("lag") is not None and st.get("lag_unit") in lags:
                lags[st["lag_unit"]].add_metric(labels, float(st["lag"]))
            for s in STATES:
                state.add_metric([*labels, s], 1.0 if t["state"] == s else 0.0)
        yield from fams.values()
        yield rate
        yield from lags.values()
        yield restarts
        yield state


def registry(supervisor: Supervisor) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(TaskCollector(supervisor))
    return reg
