"""The DeepSpeed pretraining loop end to end: exact resume after SIGKILL, torchrun with 2 processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from loclip.synth import SceneConfig, build_tokenizer, shard_paths, write_split
from loclip.training.checkpoint import COMPLETE, complete_checkpoints
from loclip.training.distributed import free_port
from loclip.training.metrics_log import read_metrics

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_split(out, "train", 96, seed=3, config=SceneConfig(image_size=32, max_objects=4), shard_size=24)
    for split in ("val", "novel"):  # held-out scenes for the evaluation at the end of the 2-process runs
        write_split(out, split, 4, seed=3, config=SceneConfig(image_size=32, max_objects=4))
    build_tokenizer(model_max_length=16).save_pretrained(out / "tokenizer")
    return out


def _recipe(world: Path, out: Path, steps: int, evaluate: bool = False, **run) -> Path:
    recipe = {
        "data": {
            "train_shards": [str(p) for p in shard_paths(world, "train")],
            "image_size": 32,
            "max_text_length": 16,
            "batch_size": 8,
            "num_workers": 1,
            "num_subcaptions": 2,
            "num_regions": 2,
        },
        "model": {"preset": "tiny", "tokenizer": str(world / "tokenizer")},
        "loss": {"grouping_weight": 0.5},  # every loss term on
        "optim": {"steps": steps, "warmup_steps": 3, "lr": 1e-3},
        "run": {
            "output_dir": str(out),
            "log_every": 1,
            "save_every": 4,
            "keep_checkpoints": 3,
            "progress": False,
            **run,
        },
    }
    if evaluate:
        recipe["eval"] = {"synth_dir": str(world), "max_scenes": 4, "batch_size": 4}
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _command(recipe: Path) -> list[str]:
    return [sys.executable, "-m", "loclip.cli.pretrain", "--config", str(recipe)]


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["train/loss"]) for r in read_metrics(out / "metrics.jsonl") if "train/loss" in r]


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(world: Path, tmp_path: Path) -> None:
    steps = 40
    full = tmp_path / "full"
    subprocess.run(_command(_recipe(world, full, steps)), check=True, env=ENV, capture_output=True)
    reference = _losses(full)
    assert [s for s, _ in reference] == list(range(1, steps + 1))

    # Kill the second run hard as soon as its first checkpoint exists, somewhere mid-way.
    killed = tmp_path / "killed"
    recipe = _recipe(world, killed, steps)
    proc = subprocess.Popen(_command(recipe), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not complete_checkpoints(killed / "checkpoints") and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _losses(killed)
    assert 4 <= len(partial) < steps, "the run was not interrupted mid-way"

    # A half-written checkpoint (no COMPLETE marker) and an interrupted temporary folder must be ignored.
    fake = killed / "checkpoints" / "step-00000036"
    fake.mkdir(parents=True)
    (fake / "junk").write_text("half written")
    (killed / "checkpoints" / ".tmp-step-00000040").mkdir()

    subprocess.run(_command(recipe), check=True, env=ENV, capture_output=True)
    resumed = _losses(killed)
    assert resumed == reference  # same steps, bit-identical losses
    assert not (killed / "checkpoints" / ".tmp-step-00000040").exists()
    final = complete_checkpoints(killed / "checkpoints")[-1]
    assert final.name == "step-00000040" and (final / COMPLETE).is_file()
    assert (killed / "model.safetensors").is_file() and (killed / "config.json").is_file()


@pytest.mark.parametrize("launcher,stage", [("torchrun", 2), ("deepspeed", 3)])
def test_two_processes_with_a_launcher_and_zero(world: Path, tmp_path: Path, launcher: str, stage: int) -> None:
    out = tmp_path / "ddp"
    recipe = _recipe(world, out, steps=6, evaluate=True, zero_stage=stage)
    port = str(free_port())
    if launcher == "torchrun":
        start = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port, "-m"]
    else:  # DeepSpeed's launcher runs 2 CPU processes with --num_gpus 2 and adds --local_rank
        start = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", port, "--module"]
    cmd = [*start, "loclip.cli.pretrain", "--config", str(recipe)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = _losses(out)
    assert [s for s, _ in losses] == list(range(1, 7))
    # held-out figures at the end (rank 0; under ZeRO-3 on gathered weights)
    (final,) = [r for r in read_metrics(out / "metrics.jsonl") if "eval/region_acc" in r]
    assert final["step"] == 6 and 0 <= final["eval/grounding_acc50"] <= 1
    state = json.loads((complete_checkpoints(out / "checkpoints")[-1] / "rank_state_00001.json").read_text())
    assert state["step"] == 6 and state["loader"]["rank"] == 1  # each rank keeps its own data position
    assert (out / "model.safetensors").is_file()
    # the export holds the full weights, gathered from the ZeRO-3 partitions
    from safetensors.torch import load_file

    weights = load_file(out / "model.safetensors")
    patch = weights["vision_model.trunk.embeddings.patch_embedding.weight"]
    assert patch.ndim == 4 and patch.abs().sum() > 0


@pytest.mark.parametrize("name", ["vit_b16_scratch.yaml", "from_clip_zero3.yaml"])
def test_shipped_recipes_load_and_validate(name: str) -> None:
    from loclip.core.recipe import load_recipe
    from loclip.pretrain.config import PretrainRecipe

    root = Path(__file__).resolve().parents[2]
    recipe = load_recipe(PretrainRecipe, root / "configs" / "pretrain" / name)
    assert (root / recipe.run.deepspeed_config).is_file()
    assert recipe.data.image_size == 224 and recipe.run.precision == "bf16"


def test_cli_overrides_and_bad_values(tmp_path: Path) -> None:
    from loclip.cli.pretrain import parser as build_parser
    from loclip.core.recipe import load_recipe
    from loclip.pretrain.config import PretrainRecipe

    args = build_parser().parse_args(
        ["--optim.lr", "3e-4", "--loss.regions", "false", "--data.train_shards", "a.tar,b.tar"]
    )
    recipe = load_recipe(PretrainRecipe, None, args)
    assert recipe.optim.lr == 3e-4 and recipe.loss.regions is False and recipe.data.train_shards == ["a.tar", "b.tar"]
    with pytest.raises(ValueError, match="optim.steps"):
        load_recipe(PretrainRecipe, None, build_parser().parse_args(["--optim.steps", "0"]))
    with pytest.raises(ValueError, match="--loss.regions expects true/false"):
        load_recipe(PretrainRecipe, None, build_parser().parse_args(["--loss.regions", "maybe"]))
    (tmp_path / "bad.yaml").write_text("optim:\n  learning_rate: 1\n")
    with pytest.raises(ValueError, match="unknown field"):
        load_recipe(PretrainRecipe, tmp_path / "bad.yaml")


def test_grounding_head_is_a_recipe_choice(world: Path) -> None:
    from transformers import AutoTokenizer

    from loclip.cli.pretrain import parser as build_parser
    from loclip.core.recipe import load_recipe
    from loclip.encoder.prompter import BoxHead, DenseBoxHead
    from loclip.pretrain.config import PretrainRecipe
    from loclip.pretrain.trainer import build_model

    tokenizer = AutoTokenizer.from_pretrained(world / "tokenizer")
    heads = {}
    for choice in ("dense", "pooled"):
        args = build_parser().parse_args(["--model.grounding_head", choice, "--data.image_size", "32"])
        heads[choice] = build_model(load_recipe(PretrainRecipe, None, args), tokenizer).vision_model.box_head
    assert type(heads["dense"]) is DenseBoxHead and type(heads["pooled"]) is BoxHead
    with pytest.raises(ValueError, match="model.grounding_head"):
        load_recipe(PretrainRecipe, None, build_parser().parse_args(["--model.grounding_head", "mlp"]))


def test_a_fresh_start_in_an_old_folder_is_refused_unless_overwrite_which_replaces_its_log(
    world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "again"
    recipe = _recipe(world, out, 3, resume=False)
    subprocess.run(_command(recipe), check=True, env=ENV, capture_output=True)
    first = _losses(out)
    refused = subprocess.run(_command(recipe), env=ENV, capture_output=True, text=True)
    assert refused.returncode != 0 and "holds checkpoints of an earlier run (step-00000003)" in refused.stderr
    subprocess.run([*_command(recipe), "--run.overwrite", "true"], check=True, env=ENV, capture_output=True)
    assert [s for s, _ in first] == [1, 2, 3] and _losses(out) == first


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model.width", "65"], "model.width = 65: must be divisible by 4"),
        (["--model.width", "36", "--model.heads", "8"], "model.width = 36: must be divisible by model.heads = 8"),
        (["--model.heads", "128"], "model.width = 64: must be divisible by model.heads = 128"),
        (["--model.prompter_heads", "3"], "model.prompter_heads = 3: must divide model.width = 64"),
        (["--model.patch_size", "1000"], "model.patch_size = 1000: larger than data.image_size = 224"),
        (
            ["--model.preset", "vit_b16", "--model.width", "65"],
            "model.width = 65 does nothing here: it shapes the tiny preset, and model.preset is 'vit_b16'",
        ),
        (
            ["--model.init_from", "enc", "--model.layers", "3"],
            "model.layers = 3 does nothing here: it shapes the tiny preset, and the encoder comes from model.init_from",
        ),
        (
            ["--model.config", "c.json", "--model.prompter_heads", "4"],
            "model.prompter_heads = 4 does nothing here: it shapes an encoder built from model.preset, and the encoder "
            "comes from model.config",
        ),
        (
            ["--model.preset", "vit_b16", "--data.image_size", "64"],
            "data.image_size = 64: model.preset 'vit_b16' takes 224 px images",
        ),
    ],
)
def test_encoder_shape_fields_are_checked_with_the_recipe_naming_the_flag(argv: list[str], message: str) -> None:
    """Each used to crash deep in the trainer (a transformers validation error, a convolution larger than the
    image, a prompter that cannot split its width), or to be ignored outside the tiny preset."""
    from loclip.cli.pretrain import parser as build_parser
    from loclip.core.recipe import load_recipe
    from loclip.pretrain.config import PretrainRecipe

    with pytest.raises(ValueError) as error:
        load_recipe(PretrainRecipe, None, build_parser().parse_args(argv))
    assert str(error.value).startswith(message)


def test_unset_tiny_shape_fields_take_the_presets_numbers_only_for_the_tiny_preset() -> None:
    from loclip.cli.pretrain import parser as build_parser
    from loclip.core.recipe import load_recipe
    from loclip.encoder.presets import TINY_SHAPE
    from loclip.pretrain.config import PretrainRecipe

    tiny = load_recipe(PretrainRecipe, None, build_parser().parse_args(["--model.width", "32"])).model
    assert {name: getattr(tiny, name) for name in TINY_SHAPE} == {**TINY_SHAPE, "width": 32}
    big = load_recipe(PretrainRecipe, None, build_parser().parse_args(["--model.preset", "vit_b16"])).model
    assert all(getattr(big, name) is None for name in TINY_SHAPE)


@pytest.mark.parametrize(
    "argv",
    [["--model.width", "65"], ["--model.patch_size", "1000"], ["--model.preset", "vit_b16", "--model.width", "65"]],
)
def test_a_bad_encoder_shape_exits_2_with_one_line_before_anything_is_written(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture
) -> None:
    from loclip.cli.pretrain import main

    assert main(["--output-dir", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loclip-pretrain: error: model.") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"pytorch_model.bin": b"not unpickled"}, "holds only pickle weights ['pytorch_model.bin']"),
        (
            {"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{oops}"},
            "model.safetensors is not a readable safetensors file",
        ),
    ],
)
def test_a_pickle_only_or_corrupt_init_from_folder_exits_2_with_one_line(
    world: Path, tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    """``model.init_from`` is read through ``loclip.core.model_dir`` (as the finetune recipe's is): a folder of
    pickle weights is never unpickled, a damaged one is named; before, either was a traceback."""
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "loclip"}))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    recipe = _recipe(world, tmp_path / "run", 1)
    done = subprocess.run(
        [*_command(recipe), "--model.init_from", str(folder)], env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("loclip-pretrain: error: model.init_from ") and message in last, done.stderr
    assert "Traceback" not in done.stderr
