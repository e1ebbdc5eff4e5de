"""What ``loclip-pretrain`` and ``loclip-finetune`` share: options, recipe, quickstart, training, the final table."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loclip.training.metrics_log import last_eval, print_table
from loclip.core.recipe import build_parser, load_recipe, parse_command


def run_trainer_command(
    prog: str, description: str | None, command: type, recipe_cls: type, quickstart: dict[str, Any],
    argv: list[str] | None, configure: Callable[[Any, Any], None], train: Callable[[Any], Callable[..., Path]],
    make_eval_fn: Callable[[Any], Any], exported: str,
) -> int:
    """Parse ``command`` options and the ``recipe_cls`` flags, read the ``--config`` file (or start from the
    ``quickstart`` recipe), let ``configure(options, recipe)`` finish it (a bad value → exit code 2 with the
    message), train with ``train()(recipe, eval_fn=make_eval_fn(recipe))`` and print the held-out figures."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    options, args = parse_command(build_parser(prog, description, command, recipe_cls), command, argv)
    try:
        recipe = load_recipe(recipe_cls, options.config, args, base=None if options.config else quickstart)
        if options.output_dir:
            recipe.run.output_dir = options.output_dir
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
    except (RunFolderError, CheckpointError, NonFiniteLossError) as e:  # the run folder or the run said no
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    final = last_eval(out)
    if final:
        print_table(final, f"Held-out figures (synthetic world) — {exported} exported to {out}")
    return 0
