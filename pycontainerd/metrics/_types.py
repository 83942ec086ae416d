"""Counters, gauges and histograms the daemon updates as it works, and the samples they read as.

Updates come from the event loop and from the core thread pool at once, so
each labelled child takes a lock; an update is a handful of operations and
never blocks on I/O.  Reading a metric produces immutable :class:`Family`
values that :mod:`.exposition` turns into text.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_BUCKETS",
    "Counter",
    "CounterChild",
    "Family",
    "Gauge",
    "Histogram",
    "HistogramChild",
    "Labels",
    "Sample",
]

#: Label names and values of one sample, in the family's label order.
Labels = tuple[tuple[str, str], ...]

#: Latency buckets in seconds, as Prometheus' client libraries default them.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of the exposition: full sample name (with any suffix), labels, value."""

    name: str
    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    """A metric as scraped: its name, kind ("counter", "gauge", "histogram"), help and samples."""

    name: str
    kind: str
    help: str
    samples: tuple[Sample, ...]


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not name or not (name[0].isalpha() or name[0] in "_:") or not all(c.isalnum() or c in "_:" for c in name):
            raise ValueError(f"invalid metric name {name!r}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    def _child(self, values: tuple[str, ...], make: type[object]) -> object:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            with self._lock:
                child = self._children.setdefault(values, make())
        return child

    def _labels(self, values: tuple[str, ...]) -> Labels:
        return tuple(zip(self.labelnames, values, strict=True))

    def remove(self, *values: str) -> None:
        """Forget one labelled child (a container that is gone)."""
        with self._lock:
            self._children.pop(values, None)


class _Value:
    __slots__ = ("lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0.0


class CounterChild:
    """One labelled counter; only ever goes up."""

    __slots__ = ("_v",)

    def __init__(self) -> None:
        self._v = _Value()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._v.lock:
            self._v.value += amount

    @property
    def value(self) -> float:
        return self._v.value


class Counter(_Metric):
    """A count of events; exposed with the ``_total`` suffix Prometheus expects."""

    kind = "counter"

    def labels(self, *values: str) -> CounterChild:
        return self._child(values, CounterChild)  # type: ignore[return-value]

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def family(self) -> Family:
        name = self.name if self.name.endswith("_total") else f"{self.name}_total"
        samples = tuple(
            Sample(name, self._labels(k), c.value)  # type: ignore[attr-defined]
            for k, c in sorted(self._children.items())
        )
        return Family(name, self.kind, self.help, samples)


class GaugeChild:
    """One labelled gauge: set, or moved up and down (work in progress)."""

    __slots__ = ("_v",)

    def __init__(self) -> None:
        self._v = _Value()

    def set(self, value: float) -> None:
        self._v.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        with self._v.lock:
            self._v.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    @property
    def value(self) -> float:
        return self._v.value


class Gauge(_Metric):
    """A value that goes up and down."""

    kind = "gauge"

    def labels(self, *values: str) -> GaugeChild:
        return self._child(values, GaugeChild)  # type: ignore[return-value]

    def family(self) -> Family:
        samples = tuple(
            Sample(self.name, self._labels(k), c.value)  # type: ignore[attr-defined]
            for k, c in sorted(self._children.items())
        )
        return Family(self.name, self.kind, self.help, samples)


class HistogramChild:
    """One labelled histogram: a count per bucket, a sum and a count."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float]:
        """Cumulative bucket counts (the last is the total count) and the sum."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        running, out = 0, []
        for c in counts:
            running += c
            out.append(running)
        return out, total


class Histogram(_Metric):
    """Observations counted into buckets (``le`` upper bounds), with their sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help, labelnames)
        bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bounds:
            raise ValueError(f"{name}: a histogram needs at least one finite bucket")
        self.bounds = bounds

    def labels(self, *values: str) -> HistogramChild:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            with self._lock:
                child = self._children.setdefault(values, HistogramChild(self.bounds))
        return child  # type: ignore[return-value]

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def family(self) -> Family:
        samples: list[Sample] = []
        for key, child in sorted(self._children.items()):
            labels = self._labels(key)
            counts, total = child.snapshot()  # type: ignore[attr-defined]
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                samples.append(Sample(f"{self.name}_bucket", (*labels, ("le", _bound(bound))), count))
            samples.append(Sample(f"{self.name}_sum", labels, total))
            samples.append(Sample(f"{self.name}_count", labels, counts[-1]))
        return Family(self.name, self.kind, self.help, tuple(samples))


def _bound(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(value)
