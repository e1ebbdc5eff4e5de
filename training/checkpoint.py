"""Atomic, exactly-resumable checkpoints around the DeepSpeed engine.

Layout under ``root``::

    step-00000200/            complete checkpoint (DeepSpeed files + per-rank state + COMPLETE marker)
    .tmp-step-00000400/       being written; never picked up, removed on the next save or resume

Every rank writes into the temporary folder; after a barrier rank 0 adds the ``COMPLETE`` marker and
renames the folder, which is atomic on POSIX filesystems. A run killed at any point leaves either a
complete checkpoint or a temporary folder that is ignored. Per-rank state (RNG streams, data-loader
position, step) is JSON, so resuming reads no pickles of ours; DeepSpeed's own model and optimizer
files are its format and are only ever read from checkpoints this trainer wrote.
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

COMPLETE = "COMPLETE"
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


def save_checkpoint(engine: Any, root: str | Path, step: int, rank_state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically; every rank must call it. Returns the final folder."""
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
        (tmp / COMPLETE).write_text(json.dumps({"step": step}))
        if final.exists():  # a re-save of the same step (e.g. the final save after a periodic one)
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load_checkpoint(engine: Any, path: str | Path) -> dict[str, Any]:
    """Restore model, optimizer and scheduler into ``engine`` and this rank's RNG; return the rank state."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise ValueError(f"{path} is not a complete checkpoint (no {COMPLETE} marker)")
    load_path, _ = engine.load_checkpoint(str(path.parent), tag=path.name, load_module_strict=True)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint at {path}")
    state_file = path / f"rank_state_{_rank():05d}.json"
    if not state_file.is_file():
        raise ValueError(f"{path} has no state for rank {_rank()}: was it written with another world size?")
    state = json.loads(state_file.read_text())
    set_rng_state(state["rng"])
    return state


def clean_partial(root: str | Path) -> None:
    """Remove temporary folders of interrupted saves (rank 0 only)."""
    root = Path(root)
    if _rank() == 0 and root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)


def resume_latest(engine: Any, root: str | Path, enabled: bool = True) -> dict[str, Any] | None:
    """Clear interrupted saves, then restore the newest complete checkpoint under ``root`` (if any and
    ``enabled``) → its rank state (``step`` and what the trainer stored), or ``None``."""
    clean_partial(root)
    latest = latest_checkpoint(root) if enabled else None
    if latest is None:
        return None
    state = load_checkpoint(engine, latest)
    state["path"] = str(latest)
    return state


def resume_run(engine: Any, root: str | Path, enabled: bool, data: Any, key: str, metrics: Any, log: Any) -> int:
    """A training loop's start: ``resume_latest``, then restore the data position (``data.load_state_dict`` of
    the rank state's ``key``) and cut ``metrics`` (a ``MetricLog``) back to the step it resumes from, so a
    resumed run's log reads like an uninterrupted one and a fresh start into an old folder begins a new log.
    Returns the step to continue from (0 for a fresh start)."""
    state = resume_latest(engine, root, enabled)
    step = 0
    if state is not None:
        step = state["step"]
        data.load_state_dict(state[key])
        if _rank() == 0:
            log.info("resumed from %s at step %d", state["path"], step)
    metrics.truncate_after(step)
    return step
