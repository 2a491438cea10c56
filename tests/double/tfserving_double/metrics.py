"""A few TF Serving monitoring metrics and their Prometheus page.

Names follow TF's monitoring names with every character outside
``[a-zA-Z0-9_]`` turned into ``:`` (``util/prometheus_exporter.cc``), e.g.
``/tensorflow/serving/request_count`` -> ``:tensorflow:serving:request_count``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

LATENCY_BUCKETS_US = [10.0 * (1.8**i) for i in range(33)]


def prometheus_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", ":", name)


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class Counter:
    name: str
    help: str
    label_names: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def inc(self, *labels: str, by: float = 1) -> None:
        with _lock:
            self.values[labels] = self.values.get(labels, 0) + by

    def total(self) -> float:
        with _lock:
            return sum(self.values.values())

    def render(self) -> list[str]:
        lines = [f"# TYPE {prometheus_name(self.name)} counter"]
        for labels, value in sorted(self.values.items()):
            lines.append(
                f"{prometheus_name(self.name)}{_labels(self.label_names, labels)} {_num(value)}"
            )
        return lines


@dataclass
class Histogram:
    name: str
    help: str
    label_names: tuple[str, ...]
    buckets: list[float] = field(default_factory=lambda: list(LATENCY_BUCKETS_US))
    values: dict[tuple[str, ...], list[float]] = field(
        default_factory=dict
    )  # counts..., sum, count

    def observe(self, value: float, *labels: str) -> None:
        with _lock:
            row = self.values.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += value
            row[-1] += 1

    def total(self) -> float:
        with _lock:
            return sum(row[-1] for row in self.values.values())

    def render(self) -> list[str]:
        base = prometheus_name(self.name)
        lines = [f"# TYPE {base} histogram"]
        for labels, row in sorted(self.values.items()):
            for bound, count in zip(self.buckets, row, strict=False):
                le = f'le="{_num(bound)}"'
                lines.append(f"{base}_bucket{_labels(self.label_names, labels, le)} {_num(count)}")
            inf = 'le="+Inf"'
            lines.append(f"{base}_bucket{_labels(self.label_names, labels, inf)} {_num(row[-1])}")
            lines.append(f"{base}_sum{_labels(self.label_names, labels)} {_num(row[-2])}")
            lines.append(f"{base}_count{_labels(self.label_names, labels)} {_num(row[-1])}")
        return lines


_lock = threading.Lock()

REQUEST_COUNT = Counter(
    "/tensorflow/serving/request_count", "The total number of requests.", ("model_name", "status")
)
REQUEST_LATENCY = Histogram(
    "/tensorflow/serving/request_latency",
    "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    ("model_name", "API", "entrypoint"),
)
RUNTIME_LATENCY = Histogram(
    "/tensorflow/serving/runtime_latency",
    "Distribution of wall time (in microseconds) for Tensorflow runtime.",
    ("model_name", "API", "runtime"),
)
LOAD_ATTEMPT_COUNT = Counter(
    "/tensorflow/cc/saved_model/load_attempt_count",
    "The number of times a SavedModel was successfully loaded.",
    ("model_path", "status"),
)
LOAD_LATENCY = Counter(
    "/tensorflow/cc/saved_model/load_latency",
    "Latency in microseconds for SavedModels that were successfully loaded.",
    ("model_path",),
)
ALL: list[Counter | Histogram] = [
    LOAD_ATTEMPT_COUNT,
    LOAD_LATENCY,
    REQUEST_COUNT,
    REQUEST_LATENCY,
    RUNTIME_LATENCY,
]


def value_of(name: str) -> float:
    """First-point value of a metric by TF name (for ReloadConfigRequest.metric_names)."""
    for metric in ALL:
        if metric.name == name:
            return metric.total()
    return 0.0


def render() -> str:
    lines: list[str] = []
    with _lock:
        for metric in ALL:
            lines.extend(metric.render())
    return "\n".join(lines) + "\n"
