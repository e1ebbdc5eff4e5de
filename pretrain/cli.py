"""`loclip-pretrain`: pretrain the encoder from a YAML recipe plus command-line overrides.

With no ``--config`` it runs the quickstart: make (or reuse) a synthetic-world set under
``OUTPUT_DIR/synth``, pretrain a tiny encoder on this CPU, print held-out figures, and leave the
exported encoder in ``OUTPUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import VARIANTS, PretrainRecipe, apply_variant
from loclip.training.metrics_log import last_eval, print_table
from loclip.training.recipe import add_recipe_arguments, load_recipe

QUICKSTART_SCENES = {"train": 6000, "val": 200, "novel": 200}
# The quickstart's starting point (a tiny encoder on 64 px scenes, sized for a 2-core CPU); flags still override.
QUICKSTART = {
    "data": {"image_size": 64, "max_text_length": 24, "batch_size": 64, "num_workers": 1,
             "num_subcaptions": 4, "num_regions": 4},
    # The text tower starts from scratch, where every caption embeds alike: filter identical captions only.
    "loss": {"text_filter_by": "exact"},
    "optim": {"lr": 2e-3, "warmup_steps": 50, "steps": 600, "weight_decay": 0.05},
    "run": {"output_dir": "runs/quickstart", "log_every": 10, "save_every": 200},
    "eval": {"max_scenes": 200},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loclip-pretrain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML recipe (see configs/pretrain/); omitted: the quickstart")
    parser.add_argument("--output-dir", help="where checkpoints, logs and the exported encoder go (= run.output_dir)")
    parser.add_argument("--variant", choices=VARIANTS, help="loss set of the learning-proof benchmark")
    parser.add_argument("--quickstart-scenes", type=int, default=QUICKSTART_SCENES["train"],
                        help="training scenes the quickstart generates (default %(default)s)")
    parser.add_argument("--synth-dir", help="where the quickstart's synthetic world lives (default OUTPUT_DIR/synth)")
    # The `deepspeed` launcher passes --local_rank; the rank is read from the environment (LOCAL_RANK).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    add_recipe_arguments(parser, PretrainRecipe)
    return parser


def prepare_quickstart(recipe: PretrainRecipe, synth: Path, train_scenes: int) -> Path:
    """Generate the synthetic world once under ``synth`` (reused when complete) and point the recipe at it."""
    from loclip.synth import SceneConfig, build_tokenizer, shard_paths, write_split

    counts = dict(QUICKSTART_SCENES, train=train_scenes)
    config = SceneConfig(image_size=recipe.data.image_size)
    for split, n in counts.items():
        marker = synth / split / "sizes.json"
        if marker.is_file() and sum(json.loads(marker.read_text()).values()) == n:
            continue  # reuse a set made by an earlier run
        write_split(synth, split, n, seed=recipe.run.seed, config=config)
    tok_dir = synth / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        build_tokenizer(model_max_length=recipe.data.max_text_length).save_pretrained(tok_dir)
    recipe.data.train_shards = [str(p) for p in shard_paths(synth, "train")]
    recipe.model.tokenizer = recipe.model.tokenizer or str(tok_dir)
    recipe.eval.synth_dir = recipe.eval.synth_dir or str(synth)
    return synth


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        recipe = load_recipe(PretrainRecipe, args.config, args, base=None if args.config else QUICKSTART)
        if args.output_dir:
            recipe.run.output_dir = args.output_dir
        if args.variant:
            apply_variant(recipe, args.variant)
            recipe.loss.validate()
        out = Path(recipe.run.output_dir)
        if args.config is None:
            prepare_quickstart(recipe, Path(args.synth_dir) if args.synth_dir else out / "synth", args.quickstart_scenes)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"loclip-pretrain: error: {e}", file=sys.stderr)
        return 2

    from .trainer import train

    eval_fn = None
    if recipe.eval.synth_dir:
        from loclip.eval.synthetic import evaluate_synthetic

        method = recipe.loss.region_method if recipe.loss.regions else "roialign"

        def eval_fn(model, processor):
            return evaluate_synthetic(model, processor, recipe.eval.synth_dir, recipe.eval.max_scenes, method,
                                      recipe.eval.batch_size)

    train(recipe, eval_fn=eval_fn)
    final = last_eval(out)
    if final:
        print_table(final, f"Held-out figures (synthetic world) — encoder exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
