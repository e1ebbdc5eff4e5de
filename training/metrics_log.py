"""Scalar logging: TensorBoard for people, ``metrics.jsonl`` for scripts, plots and tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loclip.core.json_input import read_json_lines


class MetricLog:
    """Rank-0 scalar sink. ``truncate_after(step)`` drops lines past a resumed step so a resumed run's
    log reads exactly like an uninterrupted one."""

    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except ImportError:  # tensorboard is in the train extra; the JSONL log still works
                self.tb = None

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [json.dumps(r) for r in read_metrics(self.path) if r["step"] <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.path)

    def log(self, step: int, scalars: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        record: dict[str, Any] = {"step": step, **{f"{prefix}/{k}": float(v) for k, v in scalars.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"{prefix}/{k}", float(v), step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; a line that is not a whole record (a write cut by a kill) is skipped."""
    return [r for r in read_json_lines(path) if isinstance(r, dict) and isinstance(r.get("step"), int)]


def last_eval(out_dir: str | Path) -> dict[str, float]:
    """The last ``eval/`` record of ``out_dir/metrics.jsonl`` without the prefix (empty if none)."""
    path = Path(out_dir) / "metrics.jsonl"
    evals = [r for r in read_metrics(path) if any(k.startswith("eval/") for k in r)] if path.is_file() else []
    return {k.split("/", 1)[1]: v for k, v in evals[-1].items() if k.startswith("eval/")} if evals else {}


def print_table(metrics: dict[str, float], title: str) -> None:
    """A two-column markdown table of figures, under a title."""
    print(f"\n{title}\n")
    print("| metric | value |\n|---|---|")
    for k, v in metrics.items():
        print(f"| {k} | {v:.3f} |")
