"""Recipes are checked in one place, for YAML and flags alike: every error names the field, the value and what
is expected; what is unambiguous is converted."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from loclip.cli.pretrain import parser as pretrain_parser
from loclip.core.recipe import PositiveInt, build_parser, check, load_recipe, option, parse_command
from loclip.finetune.config import FinetuneRecipe
from loclip.pretrain.config import PretrainRecipe


def from_yaml(tmp_path: Path, text: str, cls: type = PretrainRecipe):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return load_recipe(cls, path)


def from_flags(*argv: str):
    return load_recipe(PretrainRecipe, None, pretrain_parser().parse_args(list(argv)))


def test_yaml_numbers_pyyaml_reads_as_strings_are_floats(tmp_path: Path) -> None:
    recipe = from_yaml(tmp_path, "optim:\n  lr: 1e-3\n  weight_decay: 1e-2\n  steps: 10\n")
    assert recipe.optim.lr == 1e-3 and recipe.optim.weight_decay == 1e-2 and isinstance(recipe.optim.lr, float)
    assert from_yaml(tmp_path, "optim:\n  steps: 3.0\n").optim.steps == 3  # an integral float is an int
    assert from_yaml(tmp_path, "eval:\noptim:\n  steps: 7\n").optim.steps == 7  # an empty section is no change


@pytest.mark.parametrize(
    "text, message",
    [
        ("optim:\n  steps: 2.5\n", "optim.steps = 2.5: expected an integer >= 1"),
        ("optim:\n  lr: fast\n", "optim.lr = 'fast': expected a number > 0"),
        ("optim:\n  lr: .inf\n", "optim.lr = inf: expected a number > 0"),
        ("optim:\n  lr: .nan\n", "optim.lr = nan: expected a number > 0"),
        ("run:\n  log_every: 0\n", "run.log_every = 0: expected an integer >= 1"),
        ("run:\n  precision: fp16\n", "run.precision = 'fp16': expected one of ['fp32', 'bf16']"),
        ("data:\n  batch_size: true\n", "data.batch_size = True: expected an integer >= 1"),
        ("loss:\n  regions: 'yes'\n", "loss.regions = 'yes': expected true or false"),
        ("data:\n  train_shards: 3\n", "data.train_shards = 3: expected a string or a list of (a string) or null"),
        ("- a\n- b\n", "must hold a mapping of sections, got a list"),
        ("42\n", "must hold a mapping of sections, got a int"),
        ("optim: 3\n", "recipe.yaml.optim must be a mapping of fields, got int 3"),
        ("optim:\n  learning_rate: 1\n", "unknown field(s) ['learning_rate']"),
        ("optim: [\n", "not valid yaml"),
    ],
)
def test_bad_yaml_values_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        from_yaml(tmp_path, text)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data.batch_size", "0"], "data.batch_size = 0: expected an integer >= 1"),
        (["--data.batch_size", "-4"], "data.batch_size = -4: expected an integer >= 1"),
        (["--run.log_every", "0"], "run.log_every = 0: expected an integer >= 1"),
        (["--optim.lr", "inf"], "optim.lr = inf: expected a number > 0"),
        (["--optim.steps", "2.5"], "optim.steps = '2.5': expected an integer >= 1"),
        (["--loss.regions", "maybe"], "--loss.regions expects true/false"),
        (["--run.zero_stage", "4"], "run.zero_stage = '4': expected one of [0, 1, 2, 3]"),
        (["--model.grounding_head", "mlp"], "model.grounding_head = 'mlp': expected one of ['dense', 'pooled']"),
    ],
)
def test_bad_flags_name_the_field(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        from_flags(*argv)
    assert message in str(error.value)


def test_flags_convert_and_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 1e-3\nrun:\n  zero_stage: 1\n")
    args = pretrain_parser().parse_args(
        [
            "--optim.lr",
            "3e-4",
            "--loss.regions",
            "false",
            "--run.zero_stage",
            "2",
            "--data.train_shards",
            "a.tar,b.tar",
            "c.tar",
            "--run.progress",
            "--model.tokenizer",
            "none",
            "--data.batch-size",
            "8",
        ]
    )
    recipe = load_recipe(PretrainRecipe, path, args)
    assert recipe.optim.lr == 3e-4 and recipe.loss.regions is False and recipe.run.zero_stage == 2
    assert recipe.data.train_shards == ["a.tar", "b.tar", "c.tar"] and recipe.run.progress is True
    assert recipe.model.tokenizer is None and recipe.data.batch_size == 8
    single = load_recipe(PretrainRecipe, None, pretrain_parser().parse_args(["--data.train_shards", "one.tar"]))
    assert single.data.train_shards == "one.tar"  # str | list[str]: one value stays a string


def test_cross_field_rules_stay_with_the_recipe(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loss.grounding needs loss.region_method=prompter"):
        from_yaml(tmp_path, "loss:\n  region_method: roialign\n")
    with pytest.raises(ValueError, match="tune.lora/tune.qlora adapt the LLM: they need tune.stage=2"):
        from_yaml(tmp_path, "tune:\n  lora: true\n", FinetuneRecipe)


def test_command_options_are_checked_the_same_way(capsys: pytest.CaptureFixture) -> None:
    from dataclasses import dataclass

    @dataclass(kw_only=True)
    class Options:
        out: str = option(help="where")
        count: PositiveInt = option(3, "how many")
        mode: Literal["a", "b"] = option("a", "which")

    parser = build_parser("demo-command", None, Options)
    options, _ = parse_command(parser, Options, ["--out", "x", "--count", "5", "--mode", "b"])
    assert (options.out, options.count, options.mode) == ("x", 5, "b")
    for argv, message in (
        (["--out", "x", "--count", "0"], "count = 0: expected an integer >= 1"),
        (["--count", "2"], "the following arguments are required: --out"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_command(parser, Options, argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_check_converts_in_place_and_refuses_what_it_cannot() -> None:
    recipe = PretrainRecipe()
    recipe.optim.lr = 1  # an int where a float is declared
    check(recipe)
    assert recipe.optim.lr == 1.0 and isinstance(recipe.optim.lr, float)
    recipe.optim.steps = "10"
    with pytest.raises(ValueError, match="optim.steps = '10': expected an integer >= 1"):
        check(recipe)


def test_the_data_section_is_checked_once_when_a_recipe_loads(tmp_path: Path, monkeypatch) -> None:
    """DataConfig checks itself when built; the recipe's check skips it and the loader does not check again."""
    from loclip.core import recipe as R

    wheres: list[str] = []
    original = R.check
    monkeypatch.setattr(R, "check", lambda obj, where="": wheres.append(where) or original(obj, where))
    recipe = from_yaml(tmp_path, "data:\n  batch_size: 8.0\n  train_shards: a.tar\n")
    assert recipe.data.batch_size == 8 and isinstance(recipe.data.batch_size, int)
    assert wheres.count("data.") == 1 and wheres.count("") == 1  # the section, then the rest of the recipe
    from types import SimpleNamespace

    from loclip.pretrain.data.loader import build_train_loader

    (tmp_path / "a.tar").write_bytes(b"")  # an empty shard: enough to build the loader, which reads nothing yet
    recipe.data.train_shards, recipe.data.num_workers, recipe.data.image_size = str(tmp_path / "a.tar"), 0, 32
    build_train_loader(recipe.data, SimpleNamespace(image_processor=SimpleNamespace(image_size=32), tokenizer=None))
    assert wheres.count("data.") == 1
    with pytest.raises(ValueError, match="data.batch_size = 0: expected an integer >= 1"):
        from_yaml(tmp_path, "data:\n  batch_size: 0\n")
