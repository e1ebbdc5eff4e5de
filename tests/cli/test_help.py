"""Every command builds its flags from typed fields the same way: ``--help`` lists each one with its default, and
the old spelling of a flag that became a nested library field beside it."""

from __future__ import annotations

import argparse
import dataclasses
import importlib

import pytest

from loclip.core.recipe import iter_leaves

COMMANDS = {  # module: (option dataclass, recipe dataclass or None)
    "loclip.cli.synth": ("SynthCommand", None),
    "loclip.cli.pretrain": ("PretrainCommand", ("loclip.pretrain.config", "PretrainRecipe")),
    "loclip.cli.finetune": ("FinetuneCommand", ("loclip.finetune.config", "FinetuneRecipe")),
    "loclip.cli.evaluate": ("EvalCommand", None),
    "loclip.cli.label": ("LabelCommand", None),
    "loclip.demo.cli": ("DemoCommand", None),
    "loclip.cli.prepare_llm": ("PrepareLlmCommand", None),
}


def parser_of(module_name: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser a command's ``main`` builds, caught as it starts parsing."""
    caught: list[argparse.ArgumentParser] = []

    def catch(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        caught.append(parser)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        importlib.import_module(module_name).main([])
    return caught[0]


def help_text(module_name: str, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module_name).main(["--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def own_flag(name: str, is_command: bool) -> str:
    """A command's own option reads ``--like-this``; a nested field (a library config's, or a recipe's)
    ``--section.like_this``."""
    return f"--{name.replace('_', '-')}" if is_command and "." not in name else f"--{name}"


@pytest.mark.parametrize("module_name", COMMANDS)
def test_help_lists_every_flag_with_its_default(
    module_name: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(module_name)
    command_name, recipe = COMMANDS[module_name]
    classes = [(getattr(module, command_name), True)]
    if recipe is not None:
        classes.append((getattr(importlib.import_module(recipe[0]), recipe[1]), False))
    text = help_text(module_name, capsys)
    helps = {
        flag: action.help or ""
        for action in parser_of(module_name, monkeypatch)._actions
        for flag in action.option_strings
    }
    for cls, is_command in classes:
        for name, _, field in iter_leaves(cls):
            flag = own_flag(name, is_command)
            assert f"{flag} " in text or f"{flag}," in text, name
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            # this flag's own help says it is required, or its default
            assert ("required" if required else "default:") in helps[flag], (flag, helps[flag])


@pytest.mark.parametrize("module_name", COMMANDS)
def test_help_shows_each_old_spelling_beside_its_field(module_name: str, capsys: pytest.CaptureFixture) -> None:
    command = getattr(importlib.import_module(module_name), COMMANDS[module_name][0])
    text = help_text(module_name, capsys)
    for flag, target in getattr(command, "FLAG_ALIASES", {}).items():
        if isinstance(target, tuple):  # a flag that sets a value: listed as 'the same as --field value'
            assert f"{flag} the same as --{target[0]} {str(target[1]).lower()}" in text
        else:
            assert f"--{target}, {flag}" in text or f"{flag}, --{target}" in text, flag


def test_no_command_redeclares_a_field_of_a_library_config_it_nests() -> None:
    for module_name, (command_name, _) in COMMANDS.items():
        command = getattr(importlib.import_module(module_name), command_name)
        own = {name for name, _, _ in iter_leaves(command) if "." not in name}
        nested = {name.split(".")[-1] for name, _, _ in iter_leaves(command) if "." in name}
        assert not own & nested, f"{command_name} redeclares {sorted(own & nested)}"
