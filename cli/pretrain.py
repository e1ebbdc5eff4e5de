"""`loclip-pretrain`: pretrain the encoder from a YAML recipe plus command-line overrides.

With no ``--config`` it runs the quickstart, ``configs/pretrain/quickstart.yaml``: make (or reuse) a
synthetic-world set under ``OUTPUT_DIR/synth``, pretrain a tiny encoder on this CPU, print held-out figures,
and leave the exported encoder in ``OUTPUT_DIR`` (``--run.output_dir``, or ``--output-dir``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from loclip.core.messages import shown
from loclip.core.recipe import FlagAliases, PositiveInt, build_parser, option
from loclip.pretrain.config import PretrainRecipe, Variant, apply_variant

from .trainer_command import run_trainer_command

QUICKSTART_SCENES = {"train": 6000, "val": 200, "novel": 200}


@dataclass(kw_only=True)
class PretrainCommand:
    """The command's own options; every recipe field is a flag too (``--run.output_dir``)."""

    FLAG_ALIASES: ClassVar[FlagAliases] = {"--output-dir": "run.output_dir"}

    config: str | None = option(
        None, "YAML recipe (see configs/pretrain/); omitted: the quickstart, configs/pretrain/quickstart.yaml"
    )
    variant: Variant | None = option(None, "loss set of the learning-proof benchmark (applied over the recipe)")
    quickstart_scenes: PositiveInt = option(QUICKSTART_SCENES["train"], "training scenes the quickstart generates")
    synth_dir: str | None = option(None, "where the quickstart's synthetic world lives (default OUTPUT_DIR/synth)")


def prepare_quickstart(recipe: PretrainRecipe, synth: Path, train_scenes: int) -> Path:
    """Generate the synthetic world once under ``synth`` (reused when complete) and point the recipe at it."""
    from loclip.synth import SceneConfig, shard_paths
    from loclip.synth.quickstart import ensure_world

    counts = dict(QUICKSTART_SCENES, train=train_scenes)
    tokenizer = ensure_world(
        synth, counts, recipe.run.seed, SceneConfig(image_size=recipe.data.image_size), recipe.data.max_text_length
    )
    recipe.data.train_shards = [str(p) for p in shard_paths(synth, "train")]
    recipe.model.tokenizer = recipe.model.tokenizer or str(tokenizer)
    recipe.eval.synth_dir = recipe.eval.synth_dir or str(synth)
    return synth


def make_eval_fn(recipe: PretrainRecipe):
    """The held-out synthetic-world figures of ``eval.synth_dir`` (``loclip.eval.synthetic``), or ``None``."""
    if not recipe.eval.synth_dir:
        return None
    from loclip.eval.synthetic import evaluate_synthetic

    method = recipe.loss.region_method if recipe.loss.regions else "roialign"

    def eval_fn(model, processor):
        return evaluate_synthetic(
            model, processor, recipe.eval.synth_dir, recipe.eval.max_scenes, method, recipe.eval.batch_size
        )

    return eval_fn


def parser():
    return build_parser("loclip-pretrain", __doc__, PretrainCommand, PretrainRecipe)


# Recipe fields the quickstart would replace by its synthetic world: given without --config, they are refused.
QUICKSTART_OWNS = ("data.train_shards", "data.jsonl", "data.image_root")


def adjust(cmd: PretrainCommand, recipe: PretrainRecipe) -> None:
    """The learning-proof variant, applied before the recipe is validated (so its rules run once, on the result)."""
    if cmd.variant:
        apply_variant(recipe, cmd.variant)


def configure(cmd: PretrainCommand, recipe: PretrainRecipe) -> None:
    """The quickstart's world when no --config was given; a --config recipe must name its data and tokenizer."""
    if cmd.config is None:
        given = [name for name in QUICKSTART_OWNS if getattr(recipe.data, name.split(".")[1]) is not None]
        if given:
            raise ValueError(
                f"--{given[0]} needs --config: without one, the quickstart trains on its synthetic "
                "world (write a recipe for your data, see configs/pretrain/)"
            )
        synth = Path(cmd.synth_dir) if cmd.synth_dir else Path(recipe.run.output_dir) / "synth"
        prepare_quickstart(recipe, synth, cmd.quickstart_scenes)
        return
    if cmd.synth_dir is not None:
        raise ValueError("--synth-dir is the quickstart's (no --config); a recipe names its data itself")
    try:
        recipe.check_inputs()
    except ValueError as e:
        raise ValueError(f"--config {shown(cmd.config)}: {e}") from None


def trainer():
    from loclip.pretrain.trainer import train

    return train


def main(argv: list[str] | None = None) -> int:
    return run_trainer_command(
        "loclip-pretrain",
        __doc__,
        PretrainCommand,
        PretrainRecipe,
        "pretrain",
        argv,
        configure,
        trainer,
        make_eval_fn,
        "encoder",
        adjust,
    )


if __name__ == "__main__":
    sys.exit(main())
