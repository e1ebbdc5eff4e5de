"""Every command builds its flags from typed fields the same way: ``--help`` lists each one with its default."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from loclip.core.recipe import iter_leaves

COMMANDS = {  # module: (option dataclass, recipe dataclass or None)
    "loclip.cli.synth": ("SynthCommand", None),
    "loclip.cli.pretrain": ("PretrainCommand", ("loclip.pretrain.config", "PretrainRecipe")),
    "loclip.cli.finetune": ("FinetuneCommand", ("loclip.mllm.config", "FinetuneRecipe")),
    "loclip.cli.evaluate": ("EvalCommand", None),
    "loclip.cli.label": ("LabelCommand", None),
    "loclip.demo.cli": ("DemoCommand", None),
    "loclip.cli.prepare_llm": ("PrepareLlmCommand", None),
}


@pytest.mark.parametrize("module_name", COMMANDS)
def test_help_lists_every_flag_with_its_default(module_name: str, capsys: pytest.CaptureFixture) -> None:
    module = importlib.import_module(module_name)
    command_name, recipe = COMMANDS[module_name]
    classes = [getattr(module, command_name)]
    if recipe is not None:
        classes.append(getattr(importlib.import_module(recipe[0]), recipe[1]))
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for cls in classes:
        for name, _, field in iter_leaves(cls):
            assert f"--{name}" in text, name
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            assert ("required" if required else "default:") in text
    assert text.count("default:") >= sum(1 for cls in classes for _ in iter_leaves(cls)) - 3  # a few are required
