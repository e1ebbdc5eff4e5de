"""The learning proof's statistics: mean ± sd over seeds, and whether each claimed direction holds beyond it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

Figures = dict[str, float | None]  # metric → value (None: the variant has no such output)


@dataclass(frozen=True)
class Claim:
    """``better`` beats ``worse`` on ``metric`` (``worse`` may be ``"baseline"``)."""

    better: str
    worse: str
    metric: str
    why: str

    def __str__(self) -> str:
        return f"`{self.better}` > `{self.worse}` on `{self.metric}`"


def summarize(per_seed: dict[int, Figures]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "sd", "n"}}`` over the seeds that have the metric (sample sd; 0 for one seed)."""
    metrics = list(dict.fromkeys(m for figures in per_seed.values() for m in figures))
    out = {}
    for m in metrics:
        values = [f[m] for f in per_seed.values() if f.get(m) is not None]
        if values:
            out[m] = {
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "n": len(values),
            }
    return out


def verdict(better: dict[str, float] | None, worse: dict[str, float] | None) -> str:
    """``"holds"`` when the means differ by more than the two sds together (beyond the spread), ``"within the
    spread"`` when only the means are in order, ``"does not hold"`` otherwise; ``"n/a"`` without figures. With
    a single run on either side there is no spread: ``"in order (one seed)"`` or ``"does not hold"``."""
    if not better or not worse:
        return "n/a"
    gap = better["mean"] - worse["mean"]
    if min(better["n"], worse["n"]) < 2:
        return "in order (one seed)" if gap > 0 else "does not hold"
    if gap > better["sd"] + worse["sd"]:
        return "holds"
    return "within the spread" if gap > 0 else "does not hold"


def fmt(stat: dict[str, float] | None) -> str:
    """``0.402 ± 0.013`` (``0.402`` for one seed, ``—`` when missing)."""
    if not stat:
        return "—"
    return f"{stat['mean']:.3f}" if stat["n"] < 2 else f"{stat['mean']:.3f} ± {stat['sd']:.3f}"


def claims_table(claims: list[Claim], seeds: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table: each claim, both sides' mean ± sd, and its verdict."""
    lines = ["| claim | better | worse | verdict |", "|---|---|---|---|"]
    for c in claims:
        a, b = seeds.get(c.better, {}).get(c.metric), seeds.get(c.worse, {}).get(c.metric)
        lines.append(f"| {c} | {fmt(a)} | {fmt(b)} | {verdict(a, b)} |")
    return "\n".join(lines)


def results_table(metrics: tuple[str, ...], seeds: dict[str, dict[str, dict[str, float]]]) -> str:
    """A markdown table of mean ± sd per variant and metric."""
    lines = ["| variant | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for variant, stats in seeds.items():
        lines.append(f"| {variant} | " + " | ".join(fmt(stats.get(m)) for m in metrics) + " |")
    return "\n".join(lines)
