"""Learning is tested by learning: a short CPU pretraining run on the synthetic world."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from loclip.synth import SceneConfig, build_tokenizer, shard_paths, write_split
from loclip.training.metrics_log import read_metrics

CHANCE = 1 / 128  # the world has 2 sizes x 8 colours x 8 shapes = 128 phrases


def test_short_run_lowers_every_loss_and_beats_chance_on_held_out_regions(tmp_path: Path) -> None:
    world = tmp_path / "world"
    scenes = SceneConfig(image_size=48, max_objects=4)
    write_split(world, "train", 800, seed=1, config=scenes, shard_size=200)
    write_split(world, "val", 60, seed=1, config=scenes)
    write_split(world, "novel", 40, seed=1, config=scenes)
    build_tokenizer(model_max_length=20).save_pretrained(world / "tokenizer")
    out = tmp_path / "run"
    recipe = {
        "data": {
            "train_shards": [str(p) for p in shard_paths(world, "train")],
            "image_size": 48,
            "max_text_length": 20,
            "batch_size": 32,
            "num_workers": 1,
            "num_subcaptions": 3,
            "num_regions": 3,
        },
        "model": {"preset": "tiny", "tokenizer": str(world / "tokenizer")},
        "loss": {"text_filter_by": "exact"},  # a text tower from scratch: filter identical captions only
        "optim": {"steps": 160, "warmup_steps": 10, "lr": 2e-3},
        "run": {"output_dir": str(out), "log_every": 5, "save_every": 0, "progress": False},
        "eval": {"synth_dir": str(world), "max_scenes": 60},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(
        [sys.executable, "-m", "loclip.cli.pretrain", "--config", str(tmp_path / "recipe.yaml")],
        check=True,
        env=env,
        capture_output=True,
    )

    rows = read_metrics(out / "metrics.jsonl")
    train = [r for r in rows if "train/loss" in r]
    terms = [
        k
        for k in train[0]
        if k.startswith("train/") and k.split("/")[1] in ("clip", "multi_positive", "region_text", "ground_l2")
    ]
    assert len(terms) == 4, terms
    for term in terms:  # mean of the first three logs vs the last three
        first = sum(r[term] for r in train[:3]) / 3
        last = sum(r[term] for r in train[-3:]) / 3
        assert last < 0.9 * first, (term, first, last)

    evals = [r for r in rows if "eval/region_acc" in r][-1]
    assert evals["eval/region_acc"] > 10 * CHANCE, evals  # ~0.2 measured
    assert evals["eval/region_acc_novel"] > 6 * CHANCE, evals
