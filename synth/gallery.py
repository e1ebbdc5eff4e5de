"""A PNG gallery of scenes with their boxes, phrases, captions and a question each, for the docs.

``python -m loclip.synth.gallery --out docs/img/synth_gallery.png`` (needs matplotlib,
part of the ``dev`` extra; nothing else in the package imports it).
"""

from __future__ import annotations

import argparse
import itertools
import textwrap
from collections.abc import Sequence
from pathlib import Path

from loclip.encoder.box_text import render_box_list

from .config import SceneConfig
from .language import Turn
from .records import model_frame_boxes
from .scene import Scene, generate_scene

_WRAP = 46  # characters per caption line under a panel


def _first_turn(scene: Scene, kind: str) -> Turn | None:
    return next((t for t in scene.text.turns if t.kind == kind), None)


def _qa_lines(scene: Scene) -> list[str]:
    """The first referring and grounding turns as "Q: … A: …" lines (the box answer rendered)."""
    box_text = render_box_list(model_frame_boxes(scene))
    lines = []
    refer, ground = _first_turn(scene, "refer"), _first_turn(scene, "ground")
    if refer is not None:
        lines.append(f"Q: {refer.question} (<region> = cyan box)  A: {refer.answer}")
    if ground is not None and ground.target is not None:
        lines.append(f"Q: {ground.question}  A: {box_text[ground.target]} (0-999 box text)")
    return lines


def render_gallery(scenes: Sequence[Scene], path: str | Path, columns: int = 4) -> Path:
    """Draw ``scenes`` in a grid (image, boxes with phrases, captions, two questions) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = -(-len(scenes) // columns)
    # Each scene gets an image cell and, below it, a text cell of the same width.
    fig, axes = plt.subplots(
        2 * rows,
        columns,
        figsize=(4.2 * columns, 7.4 * rows),
        squeeze=False,
        gridspec_kw={"height_ratios": [1.0, 0.78] * rows},
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, scene in enumerate(scenes):
        image_ax, text_ax = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        image_ax.imshow(scene.image, interpolation="nearest")
        refer = _first_turn(scene, "refer")
        for k, obj in enumerate(scene.objects):
            x1, y1, x2, y2 = obj.box  # pixel centres sit at integers in imshow, so edges are at -0.5
            is_region = refer is not None and refer.target == k
            colour, width = ("cyan", 2.5) if is_region else ("magenta", 1.2)
            image_ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=colour, lw=width))
            image_ax.text(
                x1 - 0.5,
                y1 - 0.8,
                obj.phrase,
                color="black",
                fontsize=7,
                va="bottom",
                bbox=dict(facecolor="white", alpha=0.8, pad=0.5, lw=0),
            )
        image_ax.set_title(f"{scene.key}: {scene.text.caption}", fontsize=9)
        body = "\n\n".join(textwrap.fill(t, _WRAP) for t in [scene.text.long_caption, *_qa_lines(scene)])
        text_ax.text(0.0, 1.0, body, transform=text_ax.transAxes, fontsize=7.5, va="top", family="monospace")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.97, bottom=0.01, wspace=0.08, hspace=0.12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw a gallery of synthetic-world scenes into a PNG.")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=6, help="train scenes to show")
    parser.add_argument("--novel", type=int, default=2, help="novel (held-out composition) scenes to show")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--min-objects", type=int, default=3, help="show only scenes with at least this many objects")
    args = parser.parse_args(argv)
    config = SceneConfig(image_size=args.image_size)
    scenes: list[Scene] = []
    for split, wanted in (("train", args.train), ("novel", args.novel)):
        drawn = (generate_scene(split, i, args.seed, config) for i in itertools.count())
        scenes += itertools.islice((s for s in drawn if len(s.objects) >= args.min_objects), wanted)
    print(render_gallery(scenes, args.out))


if __name__ == "__main__":
    main()
