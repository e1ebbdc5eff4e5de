"""``run.deepspeed_config``, a JSON file the user names, is read through the one reader (``core.json_input``):
whatever stops it being read is one line naming the field and the file, which the trainer commands end with
exit 2; before, a bad file was a ``JSONDecodeError`` or ``RecursionError`` traceback from inside the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loclip.core.json_input import InputRefused
from loclip.training.config import OptimRecipe, RunRecipe
from loclip.training.engine import build_deepspeed_config


def test_the_named_json_fills_in_the_recipe_numbers(tmp_path: Path) -> None:
    path = tmp_path / "zero2.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"zero_optimization": {"stage": 2}}).encode())  # a BOM is fine
    config = build_deepspeed_config(RunRecipe(deepspeed_config=str(path)), OptimRecipe(grad_accum=3), 4)
    assert config["zero_optimization"] == {"stage": 2}
    assert (config["train_micro_batch_size_per_gpu"], config["gradient_accumulation_steps"]) == (4, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"^run\.deepspeed_config: no such file '.*ds\.json'$"),
        ("[" * 100_000, r"^run\.deepspeed_config: '.*ds\.json' nests its JSON too deeply to read$"),
        ("{zero: 2}", r"^run\.deepspeed_config: '.*ds\.json' is not valid JSON: Expecting property name"),
        ("[1, 2]", r"^run\.deepspeed_config: '.*ds\.json' must hold a JSON object of DeepSpeed settings, got list$"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "ds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputRefused, match=message):
        build_deepspeed_config(RunRecipe(deepspeed_config=str(path)), OptimRecipe(), 4)
