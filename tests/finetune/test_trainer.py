"""The finetuning loop: LoRA under ZeRO-2 with save → resume → merged export keeping the projectors;
two processes on CPU (gloo) under ZeRO-2 and ZeRO-3, stage 2 with ``<ground>`` box answers (the grounding loss
is a cross-rank mean) and held-out evaluation at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loclip.encoder import LoclipModel, tiny_config
from loclip.synth import SceneConfig, build_tokenizer, write_split
from loclip.training.distributed import free_port

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("deepspeed")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune")
    write_split(root / "synth", "train", 12, seed=3, config=SceneConfig(image_size=32, max_objects=2))
    write_split(root / "synth", "val", 2, seed=3, config=SceneConfig(image_size=32, max_objects=2))
    build_tokenizer().save_pretrained(root / "tok")
    torch.manual_seed(0)
    LoclipModel(tiny_config(image_size=32, patch_size=8, vocab_size=1067)).save_pretrained(root / "encoder")
    return root


def _args(root: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [
        "--config",
        str(REPO / "configs/mllm/stage1.yaml"),
        "--output-dir",
        str(out),
        "--model.encoder",
        str(root / "encoder"),
        "--model.tokenizer",
        str(root / "tok"),
        "--model.tiny_hidden_size",
        "64",
        "--data.train_json",
        str(root / "synth/train/conversations.json"),
        "--data.batch_size",
        "2",
        "--optim.steps",
        str(steps),
        "--optim.warmup_steps",
        "0",
        "--optim.min_lr_ratio",
        "1.0",
        "--run.save_every",
        "2",
        "--run.progress",
        "false",
        "--run.log_every",
        "1",
        *extra,
    ]


def test_lora_zero2_resume_and_merged_export(setup: Path, tmp_path: Path) -> None:
    from loclip.cli.finetune import main

    out = tmp_path / "run"
    lora = ["--tune.stage", "2", "--tune.lora", "true", "--tune.lora_r", "4"]
    assert main(_args(setup, out, 2, *lora)) == 0
    first = load_file(out / "model.safetensors")
    assert main(_args(setup, out, 3, *lora)) == 0  # resumes from step 2, trains step 3
    steps = [line for line in (out / "metrics.jsonl").read_text().splitlines() if '"train/loss"' in line]
    assert len(steps) == 3  # one log line per step, none repeated after the resume
    final = load_file(out / "model.safetensors")
    assert not any("lora" in k for k in final)  # merged
    key = "model.region_projector.linear_1.weight"
    assert not torch.equal(first[key], final[key])  # the projector kept training across the resume


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_two_process_zero_on_cpu(setup: Path, tmp_path: Path, zero: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    ground = [
        "--model.box_answers",
        "ground",
        "--tune.stage",
        "2",
        "--tune.tune_ground_head",
        "true",
        "--run.deepspeed_config",
        str(REPO / f"configs/mllm/{zero}.json"),
        # held-out figures at the end: rank 0 evaluates, under ZeRO-3 on gathered weights without the layer hooks
        "--eval.val_json",
        str(setup / "synth/val/conversations.json"),
        "--eval.max_questions",
        "2",
        "--eval.max_new_tokens",
        "3",
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "loclip.cli.finetune",
        *_args(setup, tmp_path / "ddp", 2, *ground),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    weights = load_file(tmp_path / "ddp" / "model.safetensors")
    # ZeRO-3 exports gathered weights, not the empty partitions
    assert weights["model.ground_projector.linear_1.weight"].shape == (64, 64)
    assert weights["model.vision_tower.prompter.phrase_embed"].numel() > 0
    logged = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [("train/ground_loss" in m, "train/lm_loss" in m) for m in logged if "train/loss" in m] == [(True, True)] * 2
    (final,) = [m for m in logged if "eval/rec_acc@0.5" in m]
    assert final["step"] == 2 and 0 <= final["eval/referring_accuracy"] <= 1


@pytest.mark.parametrize("fault", ["deep train_json", "deep val_json", "pickle-only init_from"])
def test_a_file_or_folder_the_recipe_names_that_cannot_be_read_exits_2_with_one_line(
    setup: Path, tmp_path: Path, fault: str
) -> None:
    """Found by the trainer after the command started (the conversations, ``model.init_from``), each used to end
    in a traceback: now one line naming the field and the file, exit status 2."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # json.loads raised RecursionError
    folder = tmp_path / "mllm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "loclip_llava"}))
    (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
    extra, message = {
        "deep train_json": (["--data.train_json", str(deep)], "data.train_json: '"),
        "deep val_json": (["--eval.val_json", str(deep)], "eval.val_json: '"),
        "pickle-only init_from": (["--model.init_from", str(folder)], "model.init_from '"),
    }[fault]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "loclip.cli.finetune", *_args(setup, tmp_path / "run", 1, *extra)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"loclip-finetune: error: {message}"), done.stderr[-3000:]
    assert ("nests its JSON too deeply to read" if "deep" in fault else "holds only pickle weights") in last
