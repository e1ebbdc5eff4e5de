"""``loclip-synth``: write the synthetic world to disk (shards, conversations, tokenizer)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from loclip.shards.write import atomic_write, json_bytes
from loclip.synth import SceneConfig, build_tokenizer, write_split
from loclip.synth.shards import prepare_directory
from loclip.synth.world import COLOURS, NOVEL_PAIR_LIST, SHAPES, SIZES, Split
from loclip.core.recipe import NonNegativeInt, PositiveInt, build_parser, option, parse_command


@dataclass(kw_only=True)
class SynthCommand:
    out: str = option(help="output directory (created; DIR/{split}/ and DIR/tokenizer/)")
    scenes: PositiveInt = option(help="scenes to write (train scenes for --split all)")
    seed: NonNegativeInt = option(0, "world seed")
    split: Split | Literal["all"] = option("all", "which split to write")
    eval_scenes: PositiveInt | None = option(
        None, "with --split all: scenes for each of val, test and novel (default: --scenes // 10, at least 1)")
    image_size: PositiveInt = option(SceneConfig.image_size, "image side in pixels")
    shard_size: PositiveInt = option(1000, "scenes per tar shard")
    min_objects: PositiveInt = option(SceneConfig.min_objects, "fewest objects a scene asks for")
    max_objects: PositiveInt = option(SceneConfig.max_objects, "most objects a scene asks for")
    no_progress: bool = option(False, "hide the progress bar")

    def plan(self) -> dict[str, int]:
        """Scenes per split to write."""
        if self.split != "all":
            return {self.split: self.scenes}
        evals = self.eval_scenes or max(1, self.scenes // 10)
        return {"train": self.scenes, "val": evals, "test": evals, "novel": evals}


def world_info(seed: int, config: SceneConfig) -> dict:
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
    parser = build_parser("loclip-synth", "Generate the synthetic world: webdataset shards + LLaVA conversations + "
                          "tokenizer under --out.", SynthCommand)
    cmd, _ = parse_command(parser, SynthCommand, argv)
    try:
        config = SceneConfig(image_size=cmd.image_size, min_objects=cmd.min_objects, max_objects=cmd.max_objects)
        plan = cmd.plan()
        for split in plan:  # fail on an unusable --out before generating anything
            prepare_directory(cmd.out, split)
    except ValueError as e:
        parser.error(str(e))

    out = Path(cmd.out)
    with tqdm(total=sum(plan.values()), unit="scene", disable=cmd.no_progress) as bar:
        summaries = []
        for split, count in plan.items():
            bar.set_description(split)
            summaries.append(write_split(out, split, count, cmd.seed, config, cmd.shard_size, progress=bar.update))
    build_tokenizer().save_pretrained(out / "tokenizer")
    atomic_write(out / "world.json", json_bytes(world_info(cmd.seed, config)))
    for s in summaries:
        print(f"{s.directory}: {s.scenes} scenes in {len(s.sizes)} shard(s)")
    print(f"{out / 'tokenizer'}: tokenizer; {out / 'world.json'}: seed, config and held-out pairs")


if __name__ == "__main__":
    main()
