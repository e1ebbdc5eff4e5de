"""A saved model directory a user names is checked before anything is built, and loads only what it says it
is: a tiny transformers Llama stands in for loclip's models (the kernel knows no loclip package)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, LlamaConfig, LlamaModel

from loclip.core.model_dir import check_model_dir, load_model_dir, load_processor_dir, read_model_type

LLAMA = {"llama": "a tiny Llama"}
FLAG = "--model"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=64,
    )
    out = tmp_path_factory.mktemp("llama")
    LlamaModel(config).save_pretrained(out)
    return out


@pytest.fixture
def model_dir(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "model"))


def edit_weights(path: Path, change) -> None:
    weights = load_file(path / "model.safetensors")
    change(weights)
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})


def refused(path: Path) -> str:
    """The one-line message ``load_model_dir`` refuses ``path`` with."""
    with pytest.raises(ValueError) as error:
        load_model_dir(path, AutoModel, LLAMA, FLAG)
    message = str(error.value)
    assert message.startswith(f"{FLAG}") and "\n" not in message and len(message) < 500, message
    return message


def test_a_good_directory_loads_with_its_weights(model_dir: Path) -> None:
    model = load_model_dir(model_dir, AutoModel, LLAMA, FLAG, dtype=torch.float32)
    assert isinstance(model, LlamaModel)
    saved = load_file(model_dir / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    assert check_model_dir(model_dir, LLAMA, FLAG) == "llama"


def test_a_model_class_loads_too(model_dir: Path) -> None:
    assert isinstance(load_model_dir(model_dir, LlamaModel, LLAMA, FLAG), LlamaModel)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "has no config.json (not a save_pretrained directory)"),
        (b"[1, 2]", "config.json holds a JSON list, not an object of settings"),
        (b"{model_type: llama", "config.json is not valid JSON: Expecting property name"),
        (b"\xff\xfe", "config.json is not UTF-8 text (byte 0)"),
        (b"[" * 100_000, "config.json nests its JSON too deeply to read"),
        (b'{"model_type": "bert"}', "has model_type 'bert'; expected 'llama' (a tiny Llama)"),
        (b'{"model_type": ["llama"]}', "has model_type ['llama']; expected 'llama'"),
        (b"{}", "has model_type None; expected 'llama'"),
    ],
)
def test_config_json_is_checked_first(model_dir: Path, config: bytes | None, message: str) -> None:
    (model_dir / "config.json").unlink()
    if config is not None:
        (model_dir / "config.json").write_bytes(config)
    assert message in refused(model_dir)
    with pytest.raises(ValueError, match=re.escape(message)):  # the same check, before any weight is looked at
        read_model_type(model_dir, LLAMA, FLAG)


def test_a_missing_directory(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope") == f"{FLAG}: no such directory {str(tmp_path / 'nope')!r}"


def test_pickle_weights_are_refused_never_unpickled(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling this creates the marker directory
        def __reduce__(self):
            return (Path.mkdir, (marker,))

    (model_dir / "model.safetensors").unlink()
    (model_dir / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    assert "holds only pickle weights ['pytorch_model.bin']; loclip loads safetensors only" in refused(model_dir)
    assert not marker.exists()


def test_no_weights_at_all(model_dir: Path) -> None:
    (model_dir / "model.safetensors").unlink()
    assert "has no model.safetensors" in refused(model_dir)


@pytest.mark.parametrize("damage", ["garbage", "header", "truncated", "empty"])
def test_a_corrupt_safetensors_file_names_the_file(model_dir: Path, damage: str) -> None:
    file = model_dir / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(
        {
            "garbage": b"\x00" * 64,
            "header": data[:8] + b"{not json" + data[17:],
            "truncated": data[: len(data) // 2],
            "empty": b"",
        }[damage]
    )
    message = refused(model_dir)
    assert "model.safetensors is not a readable safetensors file: Error while deserializing header" in message


def test_weights_of_the_wrong_shape(model_dir: Path) -> None:
    edit_weights(model_dir, lambda w: w.update({"norm.weight": torch.ones(8)}))
    assert refused(model_dir).endswith(
        "its weights do not fit the model its config.json describes: 1 of the wrong shape "
        "['norm.weight (8,) for (16,)']"
    )


def test_missing_and_unexpected_weights(model_dir: Path) -> None:
    edit_weights(model_dir, lambda w: (w.pop("norm.weight"), w.update({"extra.weight": torch.ones(16)})))
    assert refused(model_dir).endswith(
        "its weights do not fit the model its config.json describes: missing 1 ['norm.weight']; "
        "1 unexpected ['extra.weight']"
    )


def test_many_missing_weights_are_cut_short(model_dir: Path) -> None:
    edit_weights(model_dir, lambda w: [w.pop(k) for k in list(w) if "attn" in k or "layernorm" in k])
    message = refused(model_dir)  # one short line (refused() checks), however many keys
    assert "missing 6 ['layers.0.input_layernorm.weight', 'layers.0.post_attention_layernorm.weight',…" in message
    assert message.endswith("… (6 items)")


def test_a_config_asking_for_more_than_the_weights_hold_is_refused_unbuilt(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(
        json.dumps(
            {
                **config,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 32,
                "vocab_size": 32000,
            }
        )
    )
    assert "config.json describes a model of 4,594,077,696 parameters but its weights hold 3,632 values" in refused(
        model_dir
    )


@pytest.mark.parametrize("name", ["../outside.safetensors", "sub/x.safetensors", "weights.bin", "absent.safetensors"])
def test_a_shard_index_names_only_files_of_the_directory(model_dir: Path, name: str) -> None:
    (model_dir / "model.safetensors").rename(model_dir / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"norm.weight": name, "embed_tokens.weight": "model-00001-of-00002.safetensors"}}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    assert f"model.safetensors.index.json names {name!r}, not a .safetensors file in the directory" in refused(
        model_dir
    )


def test_a_sharded_directory_loads(model_dir: Path) -> None:
    (model_dir / "model.safetensors").rename(model_dir / "model-00001-of-00001.safetensors")
    names = load_file(model_dir / "model-00001-of-00001.safetensors")
    (model_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": dict.fromkeys(names, "model-00001-of-00001.safetensors")})
    )
    assert isinstance(load_model_dir(model_dir, AutoModel, LLAMA, FLAG), LlamaModel)


REMOTE = """from pathlib import Path
Path({marker!r}).mkdir()
"""


def test_remote_code_named_by_auto_map_never_runs(model_dir: Path, tmp_path: Path, capfd) -> None:
    marker = tmp_path / "remote_code_ran"
    (model_dir / "evil.py").write_text(REMOTE.format(marker=str(marker)))
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (model_dir / "config.json").write_text(json.dumps(config))
    assert isinstance(load_model_dir(model_dir, AutoModel, LLAMA, FLAG), LlamaModel)  # transformers' own class
    tokenizer_config = {"tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}
    (model_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    with pytest.raises(ValueError, match=r"^--model '.*': cannot load its processor: "):
        load_processor_dir(model_dir, FLAG)
    with pytest.raises(ValueError, match="cannot load its processor"):
        load_processor_dir(model_dir, FLAG, AutoTokenizer)
    assert not marker.exists()
    assert "Do you wish to run the custom code?" not in capfd.readouterr().out  # transformers' prompt


def test_a_broken_tokenizer_file_names_the_directory(model_dir: Path) -> None:
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    (model_dir / "tokenizer.json").write_text('{"model": 3}')
    with pytest.raises(ValueError, match=r"^--model '.*': cannot load its processor: ") as error:
        load_processor_dir(model_dir, FLAG, AutoTokenizer)
    assert "\n" not in str(error.value)
