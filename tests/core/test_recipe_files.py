"""Recipe files a user hands over: what a YAML/JSON file may hold before any field is checked, and the messages
that quote its values (cut short, whatever the value's size)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loclip.core.recipe import MAX_RECIPE_BYTES, MAX_RECIPE_VALUES, load_recipe, read_file

MESSAGE_LIMIT = 400  # characters: a message quotes values through shown(), so it stays about a line long


@dataclass
class Optim:
    lr: float = 0.1
    steps: int = 10


@dataclass
class Recipe:
    name: str = "run"
    shards: list[str] = field(default_factory=list)
    optim: Optim = field(default_factory=Optim)


def alias_bomb(levels: int, field_name: str = "optim:\n  lr") -> str:
    """A "billion laughs" recipe: ``levels`` anchored lists of nine aliases each, under ``field_name``; it holds
    9 ** (levels + 1) strings once the aliases are expanded, in a few hundred bytes."""
    lines = [f"{field_name}:", '    - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"    - &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_alias_bomb_within_the_limit_gives_a_one_line_message(tmp_path: Path) -> None:
    # 9 ** 6 = 531,441 strings, under MAX_RECIPE_VALUES: accepted by the reader, then refused by the field check,
    # whose message used to print them all (3.7 MB here; the 9-level bomb below made it 312 MB)
    assert 9**6 < MAX_RECIPE_VALUES
    with pytest.raises(ValueError) as error:
        load_recipe(Recipe, write(tmp_path, alias_bomb(5)))
    message = str(error.value)
    assert message.startswith("optim.lr = [['lol', 'lol'") and "expected a number" in message
    assert len(message) < MESSAGE_LIMIT


def test_an_alias_bomb_over_the_limit_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = write(tmp_path, alias_bomb(9))  # 9 ** 10 strings from 591 bytes
    with pytest.raises(ValueError) as error:
        read_file(path)
    assert str(error.value) == (
        f"--config {str(path)!r}: its aliases (*name) expand to more than "
        f"{MAX_RECIPE_VALUES:,} values; write the values out or use fewer aliases"
    )


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "shards: &s [a, *s]\n")
    with pytest.raises(ValueError, match=r"recipe.yaml.: a recursive alias \(a value that contains itself\)"):
        read_file(path)


def test_anchors_and_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    recipe = load_recipe(Recipe, write(tmp_path, "name: &n shared\nshards: [*n, b]\noptim: {lr: &lr 0.5, steps: 3}\n"))
    assert (recipe.name, recipe.shards, recipe.optim.lr) == ("shared", ["shared", "b"], 0.5)


def test_a_huge_recipe_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_RECIPE_BYTES + 1)  # sparse: nothing is written, only the size is claimed
    with pytest.raises(ValueError, match=r"huge.yaml' is 16,777,217 bytes; a recipe file is at most 16,777,216 bytes"):
        read_file(path)


@pytest.mark.parametrize("name", ["recipe.yaml", "recipe.json"])
def test_a_file_that_is_not_text_names_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"optim:\n  lr: \xff\xfe\n")
    with pytest.raises(ValueError, match=rf"--config: '.*{name}' is not UTF-8 text"):
        read_file(path)


def test_a_long_value_or_path_is_cut_short_in_the_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as error:
        load_recipe(Recipe, write(tmp_path, f"optim:\n  lr: {'x' * 100_000}\n"))
    assert "(100,000 characters)" in str(error.value) and len(str(error.value)) < MESSAGE_LIMIT
    with pytest.raises(ValueError) as error:
        read_file(tmp_path / ("d" * 250) / "missing.yaml")
    assert str(error.value).startswith("--config: no such file ") and len(str(error.value)) < MESSAGE_LIMIT


def test_unknown_keys_of_mixed_types_are_listed(tmp_path: Path) -> None:
    # YAML keys may be numbers, null or strings: listing them used to sort them, a TypeError
    with pytest.raises(ValueError, match=r"unknown field\(s\) \[1, None, 'extra'\]"):
        load_recipe(Recipe, write(tmp_path, "1: a\n~: b\nextra: c\n"))
