"""Loading a saved model directory a user names (``--model DIR``), checked before anything is built.

``check_model_dir`` reads only small files: ``config.json`` must be a JSON object whose ``model_type`` is one
the caller expects (a mislabelled ``llama`` in an encoder folder would otherwise build a default 7B Llama),
the weights must be safetensors (a folder with only ``pytorch_model.bin`` / ``*.pt`` is refused, never
unpickled) and every safetensors header must parse. ``load_model_dir`` then builds the model on the meta
device (no memory) to refuse, before anything is allocated, a config that needs over twice as many parameters
as the weights hold (a default 7B model from a small file), loads it with
``trust_remote_code=False`` and refuses missing, unexpected and wrongly shaped weights, which transformers
would otherwise initialise at random with a warning. Every error is a one-line ``InputRefused`` (a
``ValueError``) naming the flag and the directory. Registering loclip's Auto classes (``import loclip.encoder``
/ ``loclip.mllm``) is the caller's job: this kernel module imports no other loclip package.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .json_input import InputRefused, parse_json
from .messages import shown

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_JSON_BYTES = 16 * 2**20  # config.json and the shard index are a few kB


def _where(path: str | os.PathLike, flag: str) -> str:
    return f"{flag} {shown(str(path))}"


def _first_line(error: BaseException, limit: int = 200) -> str:
    """An exception's text cut to one short line (transformers' messages run over several)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_json(file: Path, where: str) -> Any:
    if file.stat().st_size > MAX_JSON_BYTES:
        raise InputRefused(f"{where}: {file.name} is {file.stat().st_size:,} bytes, over {MAX_JSON_BYTES:,}")
    return parse_json(file.read_bytes(), f"{where}: {file.name}")


def read_model_type(path: str | os.PathLike, expected: Mapping[str, str], flag: str) -> str:
    """``model_type`` of the directory ``path``'s ``config.json``, one of ``expected`` (``{model_type: what it
    is}``, for the message) → that type; ``ValueError`` naming ``flag`` and ``path`` otherwise."""
    where = _where(path, flag)
    if not Path(path).is_dir():
        raise InputRefused(f"{flag}: no such directory {shown(str(path))}")
    config = Path(path) / CONFIG
    if not config.is_file():
        raise InputRefused(f"{where} has no {CONFIG} (not a save_pretrained directory)")
    data = _read_json(config, where)
    if not isinstance(data, dict):
        raise InputRefused(f"{where}: {CONFIG} holds a JSON {type(data).__name__}, not an object of settings")
    kind = data.get("model_type")
    if not isinstance(kind, str) or kind not in expected:
        wanted = " or ".join(f"{t!r} ({what})" for t, what in expected.items())
        raise InputRefused(f"{where} has model_type {shown(kind)}; expected {wanted}")
    return kind


def check_weights(path: str | os.PathLike, flag: str) -> int:
    """Number of values the safetensors weights of the directory ``path`` hold (``model.safetensors``, or the
    shards its index lists), from their headers; ``ValueError`` for pickle-only weights, no weights, a bad
    index or an unreadable header."""
    root, where = Path(path), _where(path, flag)
    if (root / WEIGHTS).is_file():
        files = [root / WEIGHTS]
    elif (root / INDEX).is_file():
        files = _shards(root, where)
    else:
        pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise InputRefused(
                f"{where} holds only pickle weights {shown(pickles)}; loclip loads safetensors only "
                "(unpickling a file can run code): save the model again with save_pretrained"
            )
        raise InputRefused(f"{where} has no {WEIGHTS} (not a save_pretrained directory)")
    return sum(_read_header(file, where) for file in files)


def _shards(root: Path, where: str) -> list[Path]:
    index = _read_json(root / INDEX, where)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise InputRefused(f"{where}: {INDEX} has no weight_map of tensor names to file names")
    files = []
    for name in dict.fromkeys(weight_map.values()):
        file = root / name
        if Path(name).name != name or not name.endswith(".safetensors") or not file.is_file():
            raise InputRefused(f"{where}: {INDEX} names {shown(name)}, not a .safetensors file in the directory")
        files.append(file)
    return files


def _read_header(file: Path, where: str) -> int:
    """Number of values the safetensors ``file`` holds, from its header (opening it checks that the header
    parses and that the data it describes fills the file exactly)."""
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as f:
            return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError for a bad file)
        raise InputRefused(f"{where}: {file.name} is not a readable safetensors file: {_first_line(e)}") from None


def check_model_dir(path: str | os.PathLike, expected: Mapping[str, str], flag: str) -> str:
    """Everything ``load_model_dir`` checks before it builds a model (see the module docstring) → model_type."""
    kind = read_model_type(path, expected, flag)
    check_weights(path, flag)
    return kind


def load_model_dir(
    path: str | os.PathLike, model_class: Any, expected: Mapping[str, str], flag: str, **kwargs: Any
) -> Any:
    """The model saved in ``path``, loaded by ``model_class`` (an Auto class or a model class) after
    ``check_model_dir``; ``kwargs`` go to ``from_pretrained`` (``dtype=...``). ``ValueError`` naming ``flag``
    and ``path`` for anything wrong with the directory's files."""
    import torch
    from transformers import AutoConfig

    where = _where(path, flag)
    read_model_type(path, expected, flag)
    held = check_weights(path, flag)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        with torch.device("meta"):  # sizes only: nothing is allocated
            empty = model_class.from_config(config) if hasattr(model_class, "from_config") else model_class(config)
        needed = sum(p.numel() for p in empty.parameters())
    except Exception as e:  # transformers raises many kinds for a config it cannot build from
        raise InputRefused(f"{where}: cannot build a model from its {CONFIG}: {_first_line(e)}") from e
    if needed > 2 * held:  # memory bounded by the files handed over; smaller gaps are named key by key below
        raise InputRefused(
            f"{where}: {CONFIG} describes a model of {needed:,} parameters but its weights hold "
            f"{held:,} values; they were not saved together"
        )
    try:
        with _no_load_report():
            model, info = model_class.from_pretrained(
                path,
                trust_remote_code=False,
                use_safetensors=True,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **kwargs,
            )  # mismatches come back in info, refused below
    except Exception as e:
        raise InputRefused(f"{where}: cannot load the model: {_first_line(e)}") from e
    problems = []
    if info["missing_keys"]:
        problems.append(f"missing {len(info['missing_keys'])} {shown(sorted(info['missing_keys']))}")
    if info["unexpected_keys"]:
        problems.append(f"{len(info['unexpected_keys'])} unexpected {shown(sorted(info['unexpected_keys']))}")
    if info["mismatched_keys"]:
        shapes = [f"{k} {tuple(saved)} for {tuple(wanted)}" for k, saved, wanted in sorted(info["mismatched_keys"])]
        problems.append(f"{len(shapes)} of the wrong shape {shown(shapes)}")
    if problems:
        raise InputRefused(f"{where}: its weights do not fit the model its {CONFIG} describes: {'; '.join(problems)}")
    return model


def load_processor_dir(path: str | os.PathLike, flag: str, processor_class: Any = None) -> Any:
    """The processor saved in ``path`` (``AutoProcessor`` unless ``processor_class`` is given), loaded with
    ``trust_remote_code=False``; ``ValueError`` naming ``flag`` and ``path`` if its files do not load."""
    from transformers import AutoProcessor

    try:
        return (processor_class or AutoProcessor).from_pretrained(path, trust_remote_code=False)
    except Exception as e:  # tokenizer and image processor files fail in many ways (tokenizers: plain Exception)
        raise InputRefused(f"{_where(path, flag)}: cannot load its processor: {_first_line(e)}") from e


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


@contextmanager
def _no_load_report() -> Iterator[None]:
    """Leave out transformers' multi-line report of weights it could not load: ``load_model_dir`` refuses such
    a checkpoint with its own one-line error instead."""
    logger, drop = logging.getLogger("transformers.modeling_utils"), _DropLoadReport()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
