"""A counter and a histogram for code on the event loop's thread: plain numbers, no lock.

prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock per value they
touch, so that any thread may update them. The gateway counts a delivery and observes a
latency for every live message, tens of thousands a second, all on the event loop's
thread, and those locks were a tenth of its work per message; the api counts and times
every request the same way. :class:`LoopCounter` and :class:`LoopHistogram` keep the same
numbers in plain attributes (the loop is their only writer) and are exposed by the
registry exactly as prometheus_client's own would be: ``<name>_total``;
``<name>_bucket{le=…}``, ``<name>_count``, ``<name>_sum``. :class:`LoopCounters` and
:class:`LoopHistograms` are the labelled kinds: one of the former per label values.

A scrape from another thread reads them between two bytecodes of the loop, so it sees
each value as it was at some instant (a count may lead its sum by the one value being
added); that is all a scrape needs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

_Child = TypeVar("_Child")


class LoopCounter:
    """A monotonic counter updated from one thread only."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry | None) -> None:
        self._name = name
        self._documentation = documentation
        self.value = 0.0
        if registry is not None:  # None: a child of a labelled family
            registry.register(self)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self.value)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation)


class LoopHistogram:
    """A histogram with fixed bucket bounds, updated from one thread only."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry | None
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._name = name
        self._documentation = documentation
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        if registry is not None:
            registry.register(self)

    def observe(self, value: float) -> None:
        # The first bound at or above the value: its bucket (``le``) is the first to count it.
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        """The cumulative count of each bucket (by its ``le``) and the sum."""
        total = self._sum
        counts = list(self._counts)
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            buckets.append((_bound_label(bound), cumulative))
        return buckets, total

    def collect(self) -> Iterator[Metric]:
        buckets, total = self.buckets()
        yield HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=total)

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)


class _Family(Generic[_Child]):
    """Children by label values (:meth:`labels`), each made by ``make`` on first use."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        make: Callable[[], _Child],
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self._make = make
        self._children: dict[tuple[str, ...], _Child] = {}

    def labels(self, *values: str) -> _Child:
        """The child of these label values (in ``labelnames`` order), made on first use."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name} takes {len(self._labelnames)} label values")
            child = self._children[values] = self._make()
        return child


class LoopCounters(_Family[LoopCounter]):
    """Counters by label values (:meth:`labels`), updated from one thread only."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        super().__init__(name, documentation, labelnames, lambda: LoopCounter(name, documentation, None))
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)


class LoopHistograms(_Family[LoopHistogram]):
    """Histograms by label values (:meth:`labels`), with fixed bucket bounds, updated from one thread only."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = list(buckets)
        super().__init__(name, documentation, labelnames, lambda: LoopHistogram(name, documentation, bounds, None))
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in list(self._children.items()):
            buckets, total = child.buckets()
            family.add_metric(list(values), buckets, total)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)


def _bound_label(bound: float) -> str:
    """A bucket's ``le`` as the exposition format writes it (``0.005``, ``10.0``, ``+Inf``)."""
    return "+Inf" if bound == math.inf else repr(bound)
