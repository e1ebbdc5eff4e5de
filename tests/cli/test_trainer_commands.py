"""What the training commands do with the data flags of a quickstart, and with a recipe that lacks its data or
tokenizer: the run trains on what the user named, or stops at once (exit 2, one line) with nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from loclip.cli import finetune, pretrain
from loclip.cli.trainer_command import quickstart_recipe
from loclip.core.recipe import load_recipe, parse_command
from loclip.pretrain.config import PretrainRecipe


@pytest.mark.parametrize("flag", ["--data.train_shards", "--data.jsonl", "--data.image_root"])
def test_pretraining_quickstart_refuses_data_flags_it_would_replace(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture
) -> None:
    """The quickstart used to train on its synthetic world anyway, exit 0, and record the world's shards."""
    assert pretrain.main(["--output-dir", str(tmp_path / "run"), flag, str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"loclip-pretrain: error: {flag} needs --config: without one, the quickstart trains on its "
        "synthetic world (write a recipe for your data, see configs/pretrain/)\n"
    )
    assert not (tmp_path / "run").exists()  # no world generated, no run folder


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"model": {"tokenizer": "tok"}}, "data.train_shards and data.jsonl are both unset"),
        ({"data": {"train_shards": "a.tar"}}, "model.tokenizer is not set: an encoder built from model.preset needs"),
        (
            {"data": {"jsonl": "a.jsonl"}, "model": {"config": "c.json"}},
            "model.tokenizer is not set: an encoder built from model.config needs",
        ),
    ],
)
def test_a_recipe_without_data_or_tokenizer_exits_2_naming_it_before_the_run_starts(
    tmp_path: Path, recipe: dict, message: str, capsys: pytest.CaptureFixture
) -> None:
    """A recipe without a tokenizer used to raise from inside the trainer, after writing recipe.yaml."""
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({**recipe, "run": {"output_dir": str(tmp_path / "run")}}))
    assert pretrain.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"loclip-pretrain: error: --config {str(config)!r}: {message}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_synth_dir_with_a_recipe_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({"data": {"train_shards": "a.tar"}, "model": {"tokenizer": "tok"}}))
    assert (
        pretrain.main(
            ["--config", str(config), "--synth-dir", str(tmp_path / "w"), "--output-dir", str(tmp_path / "run")]
        )
        == 2
    )
    assert "--synth-dir is the quickstart's (no --config)" in capsys.readouterr().err


def test_finetuning_quickstart_trains_on_the_data_flags_it_is_given(tmp_path: Path) -> None:
    """The MLLM quickstart fills only what is unset: --data.train_json, --eval.val_json and --model.tokenizer are
    what the run uses (and what its recipe.yaml records)."""
    from loclip.encoder import LoclipModel, tiny_config
    from loclip.finetune.config import FinetuneRecipe

    torch.manual_seed(0)
    LoclipModel(tiny_config(image_size=32, patch_size=8)).save_pretrained(tmp_path / "encoder")
    mine = {
        "data.train_json": str(tmp_path / "mine.json"),
        "eval.val_json": str(tmp_path / "val.json"),
        "model.tokenizer": str(tmp_path / "tok"),
    }
    argv = [
        "--output-dir",
        str(tmp_path / "run"),
        "--quickstart-scenes",
        "2",
        "--model.encoder",
        str(tmp_path / "encoder"),
        *[x for name, value in mine.items() for x in (f"--{name}", value)],
    ]
    cmd, args = parse_command(finetune.parser(), finetune.FinetuneCommand, argv)
    recipe = load_recipe(FinetuneRecipe, quickstart_recipe("mllm"), args)
    finetune.configure(cmd, recipe)
    assert {name: getattr(getattr(recipe, name.split(".")[0]), name.split(".")[1]) for name in mine} == mine
    assert recipe.run.output_dir == str(tmp_path / "run")  # --output-dir: the old spelling of --run.output_dir


@pytest.mark.parametrize(
    "stage, recipe_cls, expected",
    [
        (
            "pretrain",
            "loclip.pretrain.config:PretrainRecipe",
            {
                "data.image_size": 64,
                "data.batch_size": 64,
                "loss.text_filter_by": "exact",
                "optim.lr": 2e-3,
                "optim.steps": 600,
                "run.output_dir": "runs/quickstart",
                "data.train_shards": None,
            },
        ),
        (
            "mllm",
            "loclip.finetune.config:FinetuneRecipe",
            {
                "model.box_answers": "ground",
                "tune.stage": 2,
                "data.synthetic_world": True,
                "optim.lr": 2e-3,
                "optim.steps": 1200,
                "run.output_dir": "runs/mllm_quickstart",
                "data.train_json": None,
            },
        ),
    ],
)
def test_the_quickstart_recipes_are_files_installed_with_loclip(stage: str, recipe_cls: str, expected: dict) -> None:
    """configs/<stage>/quickstart.yaml, found as package data of loclip.configs (so from a wheel too), is what a
    trainer runs without --config; the world it trains on is filled in later (data left unset here)."""
    import importlib

    path = quickstart_recipe(stage)
    assert path.is_file() and path.parts[-3:] == ("configs", stage, "quickstart.yaml")
    module, name = recipe_cls.split(":")
    recipe = load_recipe(getattr(importlib.import_module(module), name), path)
    assert {key: getattr(getattr(recipe, key.split(".")[0]), key.split(".")[1]) for key in expected} == expected


def test_a_variant_is_applied_before_the_recipe_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--variant cloc_roialign turns the grounding loss off; the recipe's rule (grounding needs the prompter) sees
    the result once, so a recipe asking for grounding with --variant cloc_roialign is no error."""
    cmd, args = parse_command(
        pretrain.parser(), pretrain.PretrainCommand, ["--variant", "cloc_roialign", "--loss.grounding", "true"]
    )
    recipe = load_recipe(PretrainRecipe, quickstart_recipe("pretrain"), args, adjust=lambda r: pretrain.adjust(cmd, r))
    assert recipe.loss.region_method == "roialign" and not recipe.loss.grounding
    assert pretrain.main(["--loss.region_method", "roialign", "--output-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        "loclip-pretrain: error: loss.grounding needs loss.region_method=prompter "
        "(the box head reads prompter output)\n"
    )
    assert not (tmp_path / "run").exists()


def test_a_bad_thread_setting_exits_2_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """OMP_NUM_THREADS is read when the run opens (loclip.core.threads); a value that is not a count is a usage
    error, not a traceback."""
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    monkeypatch.setattr(pretrain, "prepare_quickstart", lambda *a: None)  # no world needed to open the run
    assert pretrain.main(["--output-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "loclip-pretrain: error: OMP_NUM_THREADS must be a positive integer, got '0'\n"
    assert not (tmp_path / "run").exists()
