"""Commands nest library configs: ``--section.field`` flags, the old flat spellings kept as aliases, and each
config checked once, when it is built."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from loclip.core import recipe as R
from loclip.core.recipe import CheckedConfig, FlagAliases, PositiveInt, build_parser, load_recipe, option, parse_command


@dataclass
class Section(CheckedConfig):
    """A library config that Python code also builds directly."""

    FIELD_PREFIX = "section."

    name: str = option(help="what it is called")
    max_count: PositiveInt = option(2, "how many")
    progress: bool = option(True, "show progress")

    def validate(self) -> None:
        if self.name == "forbidden":
            raise ValueError("section.name may not be 'forbidden'")


@dataclass(kw_only=True)
class Command:
    FLAG_ALIASES: ClassVar[FlagAliases] = {
        "--name": "section.name",
        "--max-count": "section.max_count",
        "--quiet": ("section.progress", False),
    }

    mode_name: str = option("a", "the command's own option")
    section: Section = option(help="the library's section")


def parse(*argv: str) -> Command:
    return parse_command(build_parser("cmd", None, Command), Command, list(argv))[0]


def test_new_and_old_spellings_set_the_same_field() -> None:
    new = parse("--section.name", "x", "--section.max_count", "3", "--section.progress", "false", "--mode-name", "b")
    old = parse("--name", "x", "--max-count", "3", "--quiet", "--mode_name", "b")
    assert new == old == Command(mode_name="b", section=Section("x", 3, False))
    assert parse("--name", "x", "--max_count", "4", "--section.max-count", "5").section.max_count == 5  # last wins
    assert parse("--name", "x").section == Section("x")


def test_an_old_spelling_fills_a_required_field_and_errors_name_the_field(capsys: pytest.CaptureFixture) -> None:
    for argv, message in (
        ([], "the following arguments are required: --section.name/--name"),
        (["--name", "x", "--max-count", "0"], "section.max_count = 0: expected an integer >= 1"),
        (["--name", "forbidden"], "section.name may not be 'forbidden'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse(*argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.strip().splitlines()[-1] == f"cmd: error: {message}"


def test_help_lists_the_old_spelling_beside_the_field(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "the library's section: --section.name, --name NAME what it is called; a string; required" in text
    assert "--section.max_count, --max-count MAX_COUNT how many; an integer >= 1; default: 2" in text
    assert "--quiet the same as --section.progress false" in text
    assert "--mode-name MODE_NAME the command's own option" in text
    assert "--max_count" not in text and "--section.max-count" not in text  # twins work but are not listed


def test_an_alias_that_names_no_field_is_refused_when_the_parser_is_built() -> None:
    @dataclass(kw_only=True)
    class Broken(Command):
        FLAG_ALIASES: ClassVar[FlagAliases] = {"--count": "section.count"}

    with pytest.raises(ValueError, match="FLAG_ALIASES\\['--count'\\] must name one field"):
        build_parser("cmd", None, Broken)


def test_a_checked_config_is_checked_once_when_built_by_python_or_by_load_recipe(monkeypatch) -> None:
    with pytest.raises(ValueError, match="section.max_count = 0: expected an integer >= 1"):
        Section("x", max_count=0)
    calls: list[str] = []
    original = R.check

    def counting(obj, where=""):
        calls.append(where)
        return original(obj, where)

    monkeypatch.setattr(R, "check", counting)

    @dataclass
    class Recipe:
        section: Section = field(default_factory=lambda: Section("x"))
        steps: PositiveInt = 1

    loaded = load_recipe(Recipe, None, None, base={"section": {"name": "y", "max_count": 3.0}})
    assert calls == ["section.", ""]  # the section when built, then the recipe's own fields (skipping it)
    assert loaded.section == Section("y", 3) and isinstance(loaded.section.max_count, int)


def test_adjust_runs_after_the_field_check_and_before_validate() -> None:
    @dataclass
    class Recipe:
        steps: PositiveInt = 1
        seen: list = field(default_factory=list)

        def validate(self) -> None:
            self.seen.append(("validate", self.steps))

    def adjust(recipe: Recipe) -> None:
        recipe.seen.append(("adjust", recipe.steps))
        recipe.steps *= 10

    args = argparse.Namespace(**{"recipe:steps": "3"})
    assert load_recipe(Recipe, None, args, adjust=adjust).seen == [("adjust", 3), ("validate", 30)]
