"""The learning proof's figures: training curves per variant, and segmentation maps of one val scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loclip.core.json_input import read_json_lines
from loclip.synth import COLOURS

BACKGROUND_RGB = (255, 170, 210)  # pink: no object colour and no background colour of the world comes near it
TERMS = (
    "train/clip",
    "train/multi_positive",
    "train/grouping",
    "train/region_text",
    "train/ground_cell",
    "train/ground_l2",
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: dict[str, Path], path: Path) -> None:
    """Every loss term per variant (``runs``: variant → run folder with ``metrics.jsonl``)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(TERMS), figsize=(3.6 * len(TERMS), 3.2))
    for i, (variant, run) in enumerate(runs.items()):
        rows = [r for r in read_json_lines(run / "metrics.jsonl") if isinstance(r, dict) and "train/loss" in r]
        for ax, term in zip(axes, TERMS):
            pts = [(r["step"], r[term]) for r in rows if term in r]
            if pts:  # one colour per variant across panels (not every variant has every term)
                ax.plot(*zip(*pts), label=variant, color=f"C{i}")
    for ax, term in zip(axes, TERMS):
        ax.set_title(term.split("/")[1])
        ax.set_xlabel("step")
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=len(handles))
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    _save(fig, path)


def class_colours(classnames: tuple[str, ...]) -> np.ndarray:
    """uint8 ``[C, 3]``: a class naming a world colour is drawn in it, ``background`` in pink, others by index."""
    palette = [tuple(int(255 * c) for c in rgb[:3]) for rgb in _pyplot().get_cmap("tab10").colors]
    out = []
    for i, name in enumerate(classnames):
        colour = next((COLOURS[w] for w in name.split() if w in COLOURS), None)
        out.append(BACKGROUND_RGB if name == "background" else colour or palette[i % len(palette)])
    return np.array(out, dtype=np.uint8)


def plot_segmentation(
    image: np.ndarray,
    truth: np.ndarray,
    predictions: dict[str, np.ndarray],
    classnames: tuple[str, ...],
    path: Path,
    title: str,
) -> None:
    """The image, its true class map and each variant's predicted map (class indices ``[H, W]``) side by side."""
    plt = _pyplot()
    colours = class_colours(classnames)
    panels = [("image", image), ("ground truth", colours[truth])]
    panels += [(variant, colours[pred]) for variant, pred in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.1 * len(panels), 2.5))
    for ax, (name, picture) in zip(axes, panels):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    _pyplot().close(fig)
