"""Prometheus metrics: the types the daemon updates, the registry scraped, the text format, the endpoint.

Modules declare their metrics on :data:`REGISTRY` when imported and update
them as they work; the endpoint (``[metrics] address``) renders the
registry, including collectors read at scrape time, in Prometheus' text
format at ``/v1/metrics`` as containerd does.
"""

from ._types import DEFAULT_BUCKETS, Counter, Family, Gauge, Histogram, Sample
from .exposition import CONTENT_TYPE, render
from .registry import REGISTRY, Collector, Registry

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "REGISTRY",
    "Collector",
    "Counter",
    "Family",
    "Gauge",
    "Histogram",
    "Registry",
    "Sample",
    "render",
]
