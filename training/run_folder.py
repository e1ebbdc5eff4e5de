"""What a run folder may hold when a run starts, decided before anything is written into it.

- A fresh start (``run.resume false``) into a folder that holds checkpoints is refused, naming them: their
  rotation, the next plain rerun's resume and ``metrics.jsonl`` would mix the two runs. ``run.overwrite true``
  deletes them (with the metrics log and the TensorBoard events) first.
- A resume whose recipe differs from the one the checkpoint was written with is refused, naming each changed
  field with its old and new value, unless only fields that a resume can honour changed (``RESUMABLE``: how
  long to train, how often to log, evaluate and save, the evaluation itself). ``recipe.yaml`` then always says
  what ran.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .checkpoint import RECIPE, complete_checkpoints
from .distributed import max_over_ranks

# Fields a resumed run may change: they shape neither the model, the data order nor the optimizer state.
RESUMABLE = (
    "optim.steps",
    "run.output_dir",
    "run.log_every",
    "run.eval_every",
    "run.save_every",
    "run.keep_checkpoints",
    "run.resume",
    "run.overwrite",
    "run.max_bad_steps",
    "run.progress",
    "run.threads",
    "eval.",
)


class RunFolderError(ValueError):
    """The run folder holds something this start must not mix with; the message says what and how to go on."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_changes(before: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted field: (before, now)}`` of the fields outside ``RESUMABLE`` that differ."""
    old, new = flatten(before), flatten(now)
    changed = {}
    for name in sorted(set(old) | set(new)):
        if any(name == r or (r.endswith(".") and name.startswith(r)) for r in RESUMABLE):
            continue
        if old.get(name) != new.get(name):
            changed[name] = (old.get(name, "(absent)"), new.get(name, "(absent)"))
    return changed


def previous_recipe(out: Path, checkpoint: Path) -> dict[str, Any] | None:
    """The recipe ``checkpoint`` was written with: its ``recipe.json``, else (older checkpoints) the folder's
    ``recipe.yaml`` of the run that wrote it; ``None`` when neither is there."""
    if (checkpoint / RECIPE).is_file():
        return json.loads((checkpoint / RECIPE).read_text())
    if (out / "recipe.yaml").is_file():
        import yaml

        return yaml.safe_load((out / "recipe.yaml").read_text())
    return None


def check_run_folder(out: Path, recipe: dict[str, Any], resume: bool, overwrite: bool, rank: int) -> None:
    """Rank 0 looks at ``out`` (and clears it for ``overwrite``); every rank raises ``RunFolderError`` if the
    start is refused. Every rank must call it."""
    message = ""
    if rank == 0:
        message = _decide(out, recipe, resume, overwrite)
    if max_over_ranks(1 if message else 0):
        raise RunFolderError(message or "rank 0 refused the run folder (its log says why)")


def _decide(out: Path, recipe: dict[str, Any], resume: bool, overwrite: bool) -> str:
    found = complete_checkpoints(out / "checkpoints")
    if not found:
        return ""
    names = ", ".join(p.name for p in found)
    if not resume:
        if not overwrite:
            return (
                f"run.output_dir {str(out)!r} holds checkpoints of an earlier run ({names}); a fresh start "
                "(run.resume false) would mix the two runs. Pass --run.overwrite true to delete them (with "
                "metrics.jsonl and the TensorBoard events), or choose another run.output_dir"
            )
        shutil.rmtree(out / "checkpoints")
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
        return ""
    before = previous_recipe(out, found[-1])
    if before is None:
        return ""
    changed = recipe_changes(before, recipe)
    if not changed:
        return ""
    listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changed.items())
    return (
        f"resuming {found[-1]} with a changed recipe ({listed}). These fields shape the model, the data "
        "or the optimizer state the checkpoint holds, so the change cannot be applied to it: restore them, "
        "or start a fresh run (another run.output_dir, or --run.resume false --run.overwrite true)"
    )
