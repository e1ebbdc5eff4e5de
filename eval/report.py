"""Results: one ``TaskResult`` per (task, dataset), written as JSON (atomically) and as a markdown table."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskResult:
    """``metrics``: the figures (floats, fractions in [0, 1]); ``info``: counts, skips and settings."""

    task: str
    dataset: str
    metrics: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it over ``path`` (never half-written)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=True)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def markdown_table(results: list[TaskResult]) -> str:
    """One row per (task, dataset, metric); values in percent."""
    lines = ["| task | dataset | metric | value (%) |", "| --- | --- | --- | ---: |"]
    for r in results:
        lines += [f"| {r.task} | {r.dataset} | {name} | {_fmt(v)} |" for name, v in r.metrics.items()]
    return "\n".join(lines) + "\n"
