"""Reading checkpoint files without unpickling code.

DeepSpeed writes its model and optimizer state with ``torch.save`` and reads it back with
``torch.load(weights_only=False)``, which runs whatever a pickle says: a planted ``*.pt`` file in a run folder
would run code on the next resume. Every file loclip resumes from is read here instead, with
``weights_only=True`` and an allow-list of the few DeepSpeed classes its checkpoints hold (plain records: a
loss-scaler's numbers, the ZeRO stage enum, fragment addresses). Anything else is refused with an error that
names the file; nothing in it runs.
"""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

# (module, name) of the non-torch classes DeepSpeed's checkpoints hold (ZeRO 0-3, fp32/bf16).
DEEPSPEED_RECORDS = (
    ("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),
    ("deepspeed.runtime.zero.config", "ZeroStageEnum"),
    ("deepspeed.utils.tensor_fragment", "fragment_address"),
)


class CheckpointError(ValueError):
    """A checkpoint (file) that cannot be used; the message names it."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file that holds objects other than tensors, plain containers and the allowed records."""


def allowed_globals() -> list[type]:
    """The allow-listed classes importable in this environment (an older DeepSpeed may lack one)."""
    found = []
    for module, name in DEEPSPEED_RECORDS:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return found


def safe_load(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load`` of ``path`` that can only build tensors, containers and ``DEEPSPEED_RECORDS``.

    Raises ``UnsafeCheckpointError`` for any other object (the pickle is never run) and ``CheckpointError``
    for a file that is missing, truncated or not a torch file; both name the file.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        what = re.findall(r"GLOBAL ([\w.]+)", str(e))
        detail = f"it refers to {what[0]}" if what else str(e).splitlines()[0]
        raise UnsafeCheckpointError(
            f"refused to load {path}: {detail}, which is not a tensor, a plain container or a DeepSpeed record. "
            "loclip never unpickles code from a checkpoint; if this folder came from elsewhere, do not trust it"
        ) from None
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        if mmap and "mmap" in str(e):  # a legacy (non-zip) torch file cannot be memory-mapped: read it whole
            return safe_load(path, map_location, mmap=False)
        raise CheckpointError(f"{path} does not load ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def install(engine: Any) -> None:
    """Make the DeepSpeed ``engine`` read every checkpoint file through ``safe_load``."""
    checkpoint_engine = engine.checkpoint_engine

    def load(path: str, map_location: Any = None) -> Any:
        return safe_load(path, map_location if map_location is not None else "cpu")

    checkpoint_engine.load = load
