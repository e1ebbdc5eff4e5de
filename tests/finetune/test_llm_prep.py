"""``loclip-prepare-llm``: what it refuses to write over, how it replaces its own folder, a damaged GGUF file.

The refusals happen before any model loads (``load_gguf`` fails the test if called); the writing tests put a
tiny random Llama in place of the GGUF's model, so nothing here needs the real LLM (tests/finetune/test_real_llm.py
converts it).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loclip.cli.prepare_llm import main
from loclip.finetune import llm_prep
from loclip.finetune.builder import tiny_llm
from loclip.finetune.llm_prep import CHECK_FILE, WRITER, check_gguf, is_prepared, prepare_llm
from loclip.synth import build_tokenizer

gguf = pytest.importorskip("gguf")
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def write_gguf(path: Path) -> Path:
    """A small, valid GGUF file (two float tensors; no model transformers could load)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(512, dtype=np.float32).reshape(64, 8))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


VALID_GGUF = write_gguf(Path(tempfile.mkdtemp()) / "valid.gguf").read_bytes()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(VALID_GGUF)
    return path


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(llm_prep, "load_gguf", refuse)


def tiny_load(path: Path, dtype: object = None) -> tuple[object, object]:
    """In place of ``load_gguf``: a tiny random Llama with the world's tokenizer and a chat template."""
    tokenizer = build_tokenizer()
    tokenizer.chat_template = CHAT
    return tiny_llm(tokenizer, hidden_size=32, layers=1, heads=2).eval(), tokenizer


@pytest.fixture
def tiny_gguf_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_prep, "load_gguf", tiny_load)


@pytest.fixture
def umask() -> Iterator[int]:
    old = os.umask(0o027)  # not the usual 022, so that "what the umask gives" is what is checked
    yield 0o027
    os.umask(old)


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, link targets, folders."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        out[key] = f"-> {os.readlink(p)}" if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return out


def fake_prepared(directory: Path) -> Path:
    """A folder as ``prepare_llm`` leaves it (its record lists exactly its files), without converting anything."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    (directory / "model.safetensors").write_bytes(b"old weights")
    record = {"written_by": WRITER, "answer": "old", "files": ["config.json", "model.safetensors"]}
    (directory / CHECK_FILE).write_text(json.dumps(record))
    return directory


@pytest.mark.parametrize("out", [".", "victim/x/..", "victim", "victim/.", "afile", "link", "link-to-llm", "CWD"])
def test_a_folder_loclip_did_not_write_is_refused_even_with_overwrite_before_anything_loads(
    tmp_path: Path,
    source: Path,
    out: str,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    no_loading: None,
) -> None:
    """It used to empty ``.`` (then fail) and ``victim`` (through ``victim/x/..``), and advised --overwrite."""
    work = tmp_path / "work"
    (work / "victim" / "x").mkdir(parents=True)
    (work / "victim" / "data.txt").write_text("keep me")
    (work / "afile").write_text("keep me too")
    (work / "link").symlink_to("victim")
    fake_prepared(work / "llm")
    (work / "link-to-llm").symlink_to("llm")
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    target = str(work) if out == "CWD" else out
    code, err = run(["--out", target, "--gguf", str(source), "--overwrite"], capsys)
    assert code == 2 and err.startswith(f"loclip-prepare-llm: error: --out {target!r}") and err.count("\n") == 1
    assert "--overwrite" not in err  # the message no longer advises what would delete the folder
    assert snapshot(tmp_path) == before


def test_a_missing_gguf_is_named_before_the_output_folder_is_looked_at(
    tmp_path: Path, no_loading: None, capsys: pytest.CaptureFixture
) -> None:
    code, err = run(["--out", str(tmp_path), "--gguf", str(tmp_path / "none.gguf")], capsys)
    assert code == 2 and "--gguf: no such GGUF file" in err and "none.gguf" in err


@given(cut=st.integers(0, len(VALID_GGUF) - 1))
def test_every_truncation_of_a_gguf_file_is_refused_naming_it(cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cut.gguf"
        path.write_bytes(VALID_GGUF[:cut])
        with pytest.raises(ValueError, match=r"--gguf '.*cut\.gguf' is not a readable GGUF file, or is truncated"):
            check_gguf(path)


def test_truncated_gguf_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, no_loading: None
) -> None:
    """It used to end in an IndexError traceback from inside the GGUF reader."""
    path = tmp_path / "cut.gguf"
    path.write_bytes(VALID_GGUF[:1000])
    code, err = run(["--out", str(tmp_path / "llm"), "--gguf", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not a readable GGUF file, or is truncated" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gguf"]


def test_a_prepared_folder_is_recognised_only_by_a_record_listing_exactly_its_files(tmp_path: Path) -> None:
    llm = fake_prepared(tmp_path / "llm")
    assert is_prepared(llm)
    (llm / "notes.txt").write_text("mine")  # someone's file inside: no longer only loclip's
    assert not is_prepared(llm)
    (llm / "notes.txt").unlink()
    record = json.loads((llm / CHECK_FILE).read_text())
    for forged in ({**record, "written_by": "me"}, {k: v for k, v in record.items() if k != "files"}, [record]):
        (llm / CHECK_FILE).write_text(json.dumps(forged))
        assert not is_prepared(llm)
    for broken in ("{", "[" * 100_000, b"\xff{}"):  # not JSON, nested too deeply (was a RecursionError), not UTF-8
        (llm / CHECK_FILE).write_bytes(broken.encode() if isinstance(broken, str) else broken)
        assert not is_prepared(llm)
    assert not is_prepared(tmp_path / "absent")


def test_writes_a_checked_folder_with_ordinary_permissions_and_keeps_it_without_overwrite(
    tmp_path: Path, source: Path, tiny_gguf_model: None, umask: int
) -> None:
    """``model.safetensors`` used to be mode 0600 (safetensors' private temporary) and the folder 0755 whatever
    the umask."""
    out = tmp_path / "llm"
    record = prepare_llm(out, source)
    assert is_prepared(out) and record["written_by"] == WRITER and "model.safetensors" in record["files"]
    assert {p.name for p in out.iterdir()} == {*record["files"], CHECK_FILE}
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {p.name: 0o666 & ~umask for p in out.iterdir()}
    weights = (out / "model.safetensors").read_bytes()
    assert prepare_llm(out, source) == record and (out / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm", "model.gguf"]  # no temporary folder left


def test_overwrite_replaces_a_prepared_folder_and_a_failed_run_leaves_the_old_one(
    tmp_path: Path, source: Path, tiny_gguf_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = fake_prepared(tmp_path / "llm")
    answers = iter(["first", "second"])  # the saved copy answers otherwise than the loaded one: the check fails
    monkeypatch.setattr(llm_prep, "greedy_answer", lambda *a, **k: next(answers))
    with pytest.raises(RuntimeError, match="the saved LLM answers 'second' where the GGUF one answered 'first'"):
        prepare_llm(out, source, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm", "model.gguf"]
    monkeypatch.undo()
    monkeypatch.setattr(llm_prep, "load_gguf", tiny_load)
    record = prepare_llm(out, source, overwrite=True)
    assert record["answer"] != "old" and (out / "model.safetensors").read_bytes() != b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llm", "model.gguf"]  # the old folder is gone


def test_an_empty_folder_is_filled(tmp_path: Path, source: Path, tiny_gguf_model: None) -> None:
    (tmp_path / "llm").mkdir()
    prepare_llm(tmp_path / "llm", source)
    assert is_prepared(tmp_path / "llm")
