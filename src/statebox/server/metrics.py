"""``/metrics`` in the Prometheus text exposition format (version 0.0.4).

Small enough to keep by hand: request counts by route template, method and status, a
latency histogram by route, and counters of conflicts and backend errors. Labels are
route *templates* (``/v1/kv/{scope}/{namespace}/{key:path}``), never real paths, so the
metrics name no namespace or key. Updated only from the event loop's thread.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Final

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds of the latency buckets, in seconds.
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)
        self.conflicts = 0
        self.backend_errors = 0

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        self.latency[route].observe(seconds)

    def render(self) -> str:
        lines = [
            "# HELP statebox_http_requests_total HTTP requests by route, method and status.",
            "# TYPE statebox_http_requests_total counter",
        ]
        for (route, method, status), count in sorted(self.requests.items()):
            lines.append(
                f'statebox_http_requests_total{{route="{_label(route)}",method="{method}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP statebox_http_request_duration_seconds Time to answer, by route template.",
            "# TYPE statebox_http_request_duration_seconds histogram",
        ]
        for route, hist in sorted(self.latency.items()):
            label = _label(route)
            running = 0
            for bound, count in zip((*BUCKETS, None), hist.counts, strict=True):
                running += count
                le = "+Inf" if bound is None else repr(bound)
                lines.append(
                    f'statebox_http_request_duration_seconds_bucket{{route="{label}",le="{le}"}} '
                    f"{running}"
                )
            lines.append(
                f'statebox_http_request_duration_seconds_sum{{route="{label}"}} {hist.sum}'
            )
            lines.append(
                f'statebox_http_request_duration_seconds_count{{route="{label}"}} {running}'
            )
        lines += [
            "# HELP statebox_conflicts_total Writes refused by a version guard or a fence.",
            "# TYPE statebox_conflicts_total counter",
            f"statebox_conflicts_total {self.conflicts}",
            "# HELP statebox_backend_errors_total Requests that failed in the storage backend.",
            "# TYPE statebox_backend_errors_total counter",
            f"statebox_backend_errors_total {self.backend_errors}",
        ]
        return "\n".join(lines) + "\n"
