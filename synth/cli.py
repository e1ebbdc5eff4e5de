"""``loclip-synth``: write the synthetic world to disk (shards, conversations, tokenizer)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from .config import SceneConfig
from loclip.shards.write import atomic_write, json_bytes

from .shards import prepare_directory, write_split
from .tokenizer import build_tokenizer
from .world import COLOURS, NOVEL_PAIR_LIST, SHAPES, SIZES, SPLITS


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= low`` with a message saying what was wrong."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loclip-synth",
        description="Generate the synthetic world: webdataset shards + LLaVA conversations + tokenizer under --out.",
    )
    parser.add_argument("--out", required=True, help="output directory (created; DIR/{split}/ and DIR/tokenizer/)")
    parser.add_argument(
        "--scenes", type=_positive_int, required=True, help="scenes to write (train scenes for --split all)"
    )
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="world seed (default 0)")
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all", help="which split to write (default all)")
    parser.add_argument(
        "--eval-scenes", type=_positive_int, default=None,
        help="with --split all: scenes for each of val, test and novel (default: --scenes // 10, at least 1)",
    )  # fmt: skip
    parser.add_argument("--image-size", type=_positive_int, default=SceneConfig.image_size, help="image side in pixels")
    parser.add_argument("--shard-size", type=_positive_int, default=1000, help="scenes per tar shard")
    parser.add_argument("--min-objects", type=_positive_int, default=SceneConfig.min_objects)
    parser.add_argument("--max-objects", type=_positive_int, default=SceneConfig.max_objects)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _plan(args: argparse.Namespace) -> dict[str, int]:
    """Scenes per split to write."""
    if args.split != "all":
        return {args.split: args.scenes}
    evals = args.eval_scenes or max(1, args.scenes // 10)
    return {"train": args.scenes, "val": evals, "test": evals, "novel": evals}


def _world_info(seed: int, config: SceneConfig) -> dict:
    """``world.json``: what generated the directory, and which pairs are held out."""
    return {
        "seed": seed,
        "config": asdict(config),
        "shapes": list(SHAPES),
        "colours": list(COLOURS),
        "sizes": list(SIZES),
        "novel_pairs": [list(p) for p in NOVEL_PAIR_LIST],
    }


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SceneConfig(image_size=args.image_size, min_objects=args.min_objects, max_objects=args.max_objects)
        plan = _plan(args)
        for split in plan:  # fail on an unusable --out before generating anything
            prepare_directory(args.out, split)
    except ValueError as e:
        parser.error(str(e))

    out = Path(args.out)
    with tqdm(total=sum(plan.values()), unit="scene", disable=args.no_progress) as bar:
        summaries = []
        for split, count in plan.items():
            bar.set_description(split)
            summaries.append(write_split(out, split, count, args.seed, config, args.shard_size, progress=bar.update))
    build_tokenizer().save_pretrained(out / "tokenizer")
    atomic_write(out / "world.json", json_bytes(_world_info(args.seed, config)))
    for s in summaries:
        print(f"{s.directory}: {s.scenes} scenes in {len(s.sizes)} shard(s)")
    print(f"{out / 'tokenizer'}: tokenizer; {out / 'world.json'}: seed, config and held-out pairs")


if __name__ == "__main__":
    main()
