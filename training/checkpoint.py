"""Atomic, exactly-resumable checkpoints around the DeepSpeed engine.

Layout under ``root``::

    step-00000200/            complete checkpoint (DeepSpeed files + per-rank state + COMPLETE marker)
    .tmp-step-00000400/       being written; never picked up, removed on the next save or resume

Every rank writes into the temporary folder; after a barrier rank 0 adds the ``COMPLETE`` marker and
renames the folder, which is atomic on POSIX filesystems. A run killed at any point leaves either a
complete checkpoint or a temporary folder that is ignored. Per-rank state (RNG streams, data-loader
position, step) and the recipe that ran (``recipe.json``) are JSON; DeepSpeed's own model and optimizer files
are read through ``safe_load`` (``weights_only``, nothing in them runs), after every file of the
checkpoint was checked. A checkpoint that does not load (truncated, empty or missing file, torn JSON) is
skipped with a warning naming it, and the newest one that loads is resumed; a file that holds anything but
tensors and plain records stops the run.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from . import safe_load
from .distributed import max_over_ranks
from .safe_load import CheckpointError, UnsafeCheckpointError

COMPLETE = "COMPLETE"
RECIPE = "recipe.json"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-able values."""
    np_state = np.random.get_state()
    state = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    torch.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy()) for s in state["cuda"]]
        )


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def complete_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def save_checkpoint(
    engine: Any,
    root: str | Path,
    step: int,
    rank_state: dict[str, Any],
    keep: int = 2,
    recipe: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically; every rank must call it. Returns the final folder.

    ``recipe``: the resolved recipe (a dict), kept as ``recipe.json`` so that a resume can tell what changed."""
    root = Path(root)
    final = root / step_dir_name(step)
    tmp_tag = f".tmp-{step_dir_name(step)}"
    tmp = root / tmp_tag
    if _rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    _barrier()
    engine.save_checkpoint(str(root), tag=tmp_tag, save_latest=False)
    state = {"step": step, "rng": rng_state(), **rank_state}
    _write_json_atomic(tmp / f"rank_state_{_rank():05d}.json", state)
    _barrier()
    if _rank() == 0:
        if recipe is not None:
            _write_json_atomic(tmp / RECIPE, recipe)
        (tmp / COMPLETE).write_text(json.dumps({"step": step}))
        if final.exists():  # a re-save of the same step (e.g. the final save after a periodic one)
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def read_rank_state(path: str | Path) -> dict[str, Any]:
    """This rank's JSON state of checkpoint ``path`` (``CheckpointError`` naming the file if missing or torn)."""
    state_file = Path(path) / f"rank_state_{_rank():05d}.json"
    if not state_file.is_file():
        raise CheckpointError(f"{state_file} is missing: was {path} written with another number of ranks?")
    try:
        state = json.loads(state_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_file} is not valid JSON ({e})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "rng" not in state:
        raise CheckpointError(f"{state_file} lacks its step or RNG state")
    return state


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check every file of checkpoint ``path`` without restoring anything → this rank's state.

    Every ``*.pt`` file is opened with ``safe_load`` (memory-mapped): ``UnsafeCheckpointError`` for a file
    with anything but tensors and plain records, ``CheckpointError`` for a truncated, empty or unreadable one.
    """
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (no {COMPLETE} marker)")
    state = read_rank_state(path)
    files = sorted(path.rglob("*.pt"))
    if not files:
        raise CheckpointError(f"{path} holds no model state (*.pt)")
    for file in files:
        safe_load.safe_load(file, mmap=True)
    return state


def load_checkpoint(engine: Any, path: str | Path) -> dict[str, Any]:
    """Restore model, optimizer and scheduler into ``engine`` and this rank's RNG; return the rank state."""
    path = Path(path)
    state = verify_checkpoint(path)
    safe_load.install(engine)
    load_path, _ = engine.load_checkpoint(str(path.parent), tag=path.name, load_module_strict=True)
    if load_path is None:
        raise CheckpointError(f"DeepSpeed could not load the checkpoint at {path}")
    set_rng_state(state["rng"])
    return state


def clean_partial(root: str | Path) -> None:
    """Remove temporary folders of interrupted saves (rank 0 only)."""
    root = Path(root)
    if _rank() == 0 and root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


_OK, _BROKEN, _UNSAFE = 0, 1, 2


def resume_latest(engine: Any, root: str | Path, enabled: bool = True, log: Any = None) -> dict[str, Any] | None:
    """Clear interrupted saves, then restore the newest complete checkpoint under ``root`` that loads (if any
    and ``enabled``) → its rank state (``step`` and what the trainer stored, plus ``path``), or ``None``.

    A checkpoint that does not load on some rank is skipped on all of them with a warning naming it; when
    none loads, ``CheckpointError`` names each and why. An unsafe file stops at once (no fallback: a planted
    file means the folder is not to be trusted)."""
    clean_partial(root)
    candidates = list(reversed(complete_checkpoints(root))) if enabled else []
    failures: list[str] = []
    for path in candidates:
        code, state, error = _OK, None, None
        try:
            state = load_checkpoint(engine, path)
        except UnsafeCheckpointError as e:
            code, error = _UNSAFE, e
        except Exception as e:  # any failure to restore: a corrupt file, a DeepSpeed error on it
            code, error = _BROKEN, e
        worst = max_over_ranks(code)
        if worst == _UNSAFE:
            raise (
                error
                if code == _UNSAFE
                else UnsafeCheckpointError(
                    f"refused to resume from {path}: another rank found a file that is not safe to load"
                )
            )
        if worst == _OK:
            if failures and log is not None:
                log.warning("resumed from %s: newer checkpoint(s) did not load: %s", path, "; ".join(failures))
            state["path"] = str(path)
            return state
        failures.append(f"{path.name}: {error if error is not None else 'did not load on another rank'}")
        if log is not None:
            log.warning("checkpoint %s does not load (%s); trying an older one", path, failures[-1])
    if failures:
        raise CheckpointError(f"no checkpoint under {root} loads: " + "; ".join(failures))
    return None


def resume_run(engine: Any, root: str | Path, enabled: bool, data: Any, key: str, metrics: Any, log: Any) -> int:
    """A training loop's start: ``resume_latest``, then restore the data position (``data.load_state_dict`` of
    the rank state's ``key``) and cut ``metrics`` (a ``MetricLog``) back to the step it resumes from, so a
    resumed run's log reads like an uninterrupted one and a fresh start into an old folder begins a new log.
    Returns the step to continue from (0 for a fresh start)."""
    state = resume_latest(engine, root, enabled, log)
    step = 0
    if state is not None:
        step = state["step"]
        data.load_state_dict(state[key])
        if _rank() == 0:
            log.info("resumed from %s at step %d", state["path"], step)
    metrics.truncate_after(step)
    return step
