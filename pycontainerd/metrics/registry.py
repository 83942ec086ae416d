"""Where metrics are registered and scraped from: fixed metrics plus collectors read on demand.

A collector computes families when scraped (the content store's size, each
container's cgroup), so values that would be costly to keep current are
only read when someone asks.  One collector failing leaves the rest of the
scrape intact; its failure is logged and counted.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ._types import Counter, Family, Gauge, Histogram

__all__ = ["REGISTRY", "Collector", "Registry"]

log = logging.getLogger("pycontainerd.metrics")

#: Produces families when scraped; may be a coroutine function.
Collector = Callable[[], Iterable[Family] | Awaitable[Iterable[Family]]]

_Metric = Counter | Gauge | Histogram
M = TypeVar("M", Counter, Gauge, Histogram)

COLLECT_TIMEOUT = 10.0


class Registry:
    """Named metrics and collectors; names are unique."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: dict[str, Collector] = {}
        self._lock = threading.Lock()
        self._errors = Counter(
            "pycontainerd_metrics_collector_errors_total", "Scrapes in which a collector failed.", ["collector"]
        )
        self.register(self._errors)

    def register(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is registered already")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Counter:
        """The counter called ``name``, created on first use (so modules may declare it at import)."""
        return self._get(name, lambda: Counter(name, help, tuple(labelnames)), Counter)

    def gauge(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self._get(name, lambda: Gauge(name, help, tuple(labelnames)), Gauge)

    def histogram(
        self, name: str, help: str, labelnames: Iterable[str] = (), buckets: Iterable[float] | None = None
    ) -> Histogram:
        def make() -> Histogram:
            if buckets is None:
                return Histogram(name, help, tuple(labelnames))
            return Histogram(name, help, tuple(labelnames), buckets)

        return self._get(name, make, Histogram)

    def _get(self, name: str, make: Callable[[], M], kind: type[M]) -> M:
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = make()
        if not isinstance(metric, kind):
            raise ValueError(f"metric {name} is a {metric.kind}, not a {kind.kind}")
        return metric

    def add_collector(self, name: str, collector: Collector) -> None:
        """Read ``collector`` at every scrape; a later one of the same name replaces it."""
        with self._lock:
            self._collectors[name] = collector

    def remove_collector(self, name: str) -> None:
        with self._lock:
            self._collectors.pop(name, None)

    async def collect(self) -> list[Family]:
        """Every family, fixed metrics first, then collectors' (each bounded in time)."""
        with self._lock:
            metrics = sorted(self._metrics.values(), key=lambda m: m.name)
            collectors = list(self._collectors.items())
        results = await asyncio.gather(*(self._run(name, c) for name, c in collectors))
        families = [m.family() for m in metrics if m is not self._errors]
        for found in results:
            families.extend(found)
        families.append(self._errors.family())
        return families

    async def _run(self, name: str, collector: Collector) -> list[Family]:
        try:
            result = collector()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, COLLECT_TIMEOUT)
            return list(result)
        except Exception as e:
            log.warning("metrics collector %s failed: %s", name, e)
            self._errors.labels(name).inc()
            return []


#: The daemon's registry: modules declare their metrics here when imported.
REGISTRY = Registry()
