"""What ``loclip-pretrain`` and ``loclip-finetune`` share: options, recipe, quickstart, training, the final table."""

from __future__ import annotations

import importlib.resources
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loclip.core.json_input import InputRefused
from loclip.core.recipe import build_parser, load_recipe, parse_command
from loclip.core.threads import ThreadSettingError
from loclip.training.metrics_log import last_eval, print_table


def quickstart_recipe(stage: str) -> Path:
    """``configs/<stage>/quickstart.yaml``: the recipe a trainer runs without ``--config``, installed with loclip
    (package data of ``loclip.configs``), so a wheel finds it as a checkout does."""
    return Path(str(importlib.resources.files("loclip.configs").joinpath(f"{stage}/quickstart.yaml")))


def run_trainer_command(
    prog: str,
    description: str | None,
    command: type,
    recipe_cls: type,
    quickstart: str,
    argv: list[str] | None,
    configure: Callable[[Any, Any], None],
    train: Callable[[Any], Callable[..., Path]],
    make_eval_fn: Callable[[Any], Any],
    exported: str,
    adjust: Callable[[Any, Any], None] | None = None,
) -> int:
    """Parse ``command`` options and the ``recipe_cls`` flags, read the ``--config`` file (or the ``quickstart``
    stage's recipe, ``quickstart_recipe``), with ``adjust(options, recipe)`` applied before the recipe is
    validated, let ``configure(options, recipe)`` finish it (a bad value → exit code 2 with the message), train
    with ``train()(recipe, eval_fn=make_eval_fn(recipe))`` and print the held-out figures."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    options, args = parse_command(build_parser(prog, description, command, recipe_cls), command, argv)
    try:
        recipe = load_recipe(
            recipe_cls,
            options.config or quickstart_recipe(quickstart),
            args,
            adjust=None if adjust is None else lambda r: adjust(options, r),
        )
        configure(options, recipe)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    out = Path(recipe.run.output_dir)
    from loclip.training.loop import NonFiniteLossError
    from loclip.training.run_folder import RunFolderError
    from loclip.training.safe_load import CheckpointError

    try:
        train()(recipe, eval_fn=make_eval_fn(recipe))  # train() imports the trainer (DeepSpeed) only now
    except (InputRefused, ThreadSettingError) as e:  # a file the recipe names, found unreadable once the trainer
        # opened it, or an OMP_NUM_THREADS that is not a count
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (RunFolderError, CheckpointError, NonFiniteLossError) as e:  # the run folder or the run said no
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    final = last_eval(out)
    if final:
        print_table(final, f"Held-out figures (synthetic world) — {exported} exported to {out}")
    return 0
