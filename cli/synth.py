"""``loclip-synth``: write the synthetic world to disk (shards, conversations, tokenizer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from tqdm import tqdm

from loclip.core.recipe import FlagAliases, NonNegativeInt, PositiveInt, build_parser, option, parse_command
from loclip.synth import SceneConfig, build_tokenizer, write_split
from loclip.synth.ownership import check_may_write, entries, mark_world, world_info
from loclip.synth.shards import prepare_directory, replaced_files
from loclip.synth.world import Split


@dataclass(kw_only=True)
class SynthCommand:
    FLAG_ALIASES: ClassVar[FlagAliases] = {
        "--image-size": "scene.image_size",
        "--min-objects": "scene.min_objects",
        "--max-objects": "scene.max_objects",
    }

    out: str = option(help="output directory (created; DIR/{split}/ and DIR/tokenizer/)")
    scenes: PositiveInt = option(help="scenes to write (train scenes for --split all)")
    seed: NonNegativeInt = option(0, "world seed")
    split: Split | Literal["all"] = option("all", "which split to write")
    eval_scenes: PositiveInt | None = option(
        None, "with --split all: scenes for each of val, test and novel (default: --scenes // 10, at least 1)"
    )
    shard_size: PositiveInt = option(1000, "scenes per tar shard")
    scene: SceneConfig = option(default_factory=SceneConfig, help="scenes (loclip.synth.SceneConfig)")
    no_progress: bool = option(False, "hide the progress bar")

    def plan(self) -> dict[str, int]:
        """Scenes per split to write."""
        if self.split != "all":
            return {self.split: self.scenes}
        evals = self.eval_scenes or max(1, self.scenes // 10)
        return {"train": self.scenes, "val": evals, "test": evals, "novel": evals}


def main(argv: list[str] | None = None) -> None:
    parser = build_parser(
        "loclip-synth",
        "Generate the synthetic world: webdataset shards + LLaVA conversations + tokenizer under --out.",
        SynthCommand,
    )
    cmd, _ = parse_command(parser, SynthCommand, argv)
    out = Path(cmd.out)
    try:
        config = cmd.scene
        plan = cmd.plan()
        # fail on an unusable --out, or one holding files loclip did not write, before generating anything
        replaced = [p for split, count in plan.items() for p in replaced_files(out, split, count)]
        check_may_write(out, [*replaced, *entries(out / "tokenizer")], name="--out")
        for split in plan:
            prepare_directory(out, split)
    except ValueError as e:
        parser.error(str(e))

    mark_world(out, world_info(cmd.seed, config))  # first: a rerun after an interruption finds the folder loclip's
    with tqdm(total=sum(plan.values()), unit="scene", disable=cmd.no_progress) as bar:
        summaries = []
        for split, count in plan.items():
            bar.set_description(split)
            summaries.append(write_split(out, split, count, cmd.seed, config, cmd.shard_size, progress=bar.update))
    build_tokenizer().save_pretrained(out / "tokenizer")
    for s in summaries:
        print(f"{s.directory}: {s.scenes} scenes in {len(s.sizes)} shard(s)")
    print(f"{out / 'tokenizer'}: tokenizer; {out / 'world.json'}: seed, config and held-out pairs")


if __name__ == "__main__":
    main()
