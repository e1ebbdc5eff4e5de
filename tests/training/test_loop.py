"""The training loop and its checkpoints on a toy model (DeepSpeed, one CPU process): what a run does when the
loss diverges, when its folder holds another run or a changed recipe, when a checkpoint is corrupt, and when
a checkpoint file was planted to run code."""

from __future__ import annotations

import json
import logging
import os
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("deepspeed")

from loclip.core.threads import ThreadSettingError
from loclip.training import checkpoint as ckpt
from loclip.training.config import OptimRecipe, RunRecipe
from loclip.training.engine import build_engine
from loclip.training.loop import NonFiniteLossError, StepOutput, open_run, train_loop
from loclip.training.metrics_log import read_metrics
from loclip.training.run_folder import RunFolderError
from loclip.training.safe_load import CheckpointError, UnsafeCheckpointError


@dataclass
class ToyRecipe:
    optim: OptimRecipe = field(default_factory=lambda: OptimRecipe(steps=4, warmup_steps=0, lr=1e-2))
    run: RunRecipe = field(
        default_factory=lambda: RunRecipe(save_every=2, keep_checkpoints=5, log_every=1, progress=False)
    )


class Stream:
    """Batches ``{"x": [2, 4]}`` drawn from the position, resumable."""

    def __init__(self) -> None:
        self.position = 0

    def __iter__(self):
        while True:
            g = torch.Generator().manual_seed(self.position)
            self.position += 1
            yield {"x": torch.randn(2, 4, generator=g)}

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]


def run(out: Path, steps: int = 4, nan_at: set[int] | None = None, **run_fields) -> tuple[int, list[float], Path]:
    """Train the toy for ``steps`` into ``out``; ``nan_at``: micro-steps (1-based) whose loss is NaN.
    Returns (step reached, logged losses, the exported file)."""
    recipe = ToyRecipe()
    recipe.optim.steps = steps
    recipe.run.output_dir = str(out)
    for name, value in run_fields.items():
        setattr(recipe.run, name, value)
    ctx = open_run(recipe, recipe.run)
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    engine, scheduler = build_engine(model, recipe.run, recipe.optim, 2)
    calls = [0]

    def step(batch: dict) -> StepOutput:
        calls[0] += 1
        loss = engine(batch["x"]).pow(2).mean()
        if nan_at and calls[0] in nan_at:
            loss = loss * float("nan")
        return StepOutput(loss, {"mse": loss.detach()}, count=2)

    exported = out / "toy.safetensors"

    def export() -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in engine.module.state_dict().items()}, exported)

    reached = train_loop(
        engine, scheduler, Stream(), step, ctx=ctx, optim=recipe.optim, data_key="stream", export=export
    )
    losses = [r["train/loss"] for r in read_metrics(out / "metrics.jsonl") if "train/loss" in r]
    return reached, losses, exported


def test_a_non_finite_loss_stops_naming_the_step_and_term_keeping_the_last_good_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"step 3: the loss is not finite \(loss=nan, mse=nan\)") as e:
        run(out, steps=4, nan_at={3})
    assert "step-00000002" in str(e.value) and "run.max_bad_steps=0" in str(e.value)
    assert [p.name for p in ckpt.complete_checkpoints(out / "checkpoints")] == ["step-00000002"]
    assert not (out / "toy.safetensors").exists()  # never exported


def test_max_bad_steps_skips_that_many_non_finite_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        reached, losses, exported = run(tmp_path / "skip", steps=4, nan_at={2}, max_bad_steps=1)
    assert reached == 4 and len(losses) == 4 and all(loss == loss for loss in losses) and exported.is_file()
    assert "step 2: non-finite loss" in caplog.text


def test_diverged_weights_are_never_saved(tmp_path: Path) -> None:
    # a gradient that is not finite while the loss is: the update poisons the weights, the loss looked fine
    recipe = ToyRecipe()
    recipe.optim.steps, recipe.optim.grad_clip = 2, 0.0
    recipe.run.output_dir, recipe.run.save_every = str(tmp_path / "diverge"), 1
    ctx = open_run(recipe, recipe.run)
    model = nn.Linear(4, 1)
    model.weight.register_hook(lambda grad: grad * float("inf"))
    engine, scheduler = build_engine(model, recipe.run, recipe.optim, 2)

    def step(batch: dict) -> StepOutput:
        return StepOutput(engine(batch["x"]).pow(2).mean(), {}, 2)

    with pytest.raises(NonFiniteLossError, match="step 1: the weights are not finite"):
        train_loop(engine, scheduler, Stream(), step, ctx=ctx, optim=recipe.optim, data_key="stream")
    assert ckpt.complete_checkpoints(ctx.out / "checkpoints") == []


def test_a_fresh_start_into_an_earlier_run_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "twice"
    run(out, steps=4)
    with pytest.raises(
        RunFolderError,
        match=r"holds checkpoints of an earlier run \(step-00000002, step-00000004\)"
        r".*--run.overwrite true",
    ):
        run(out, steps=2, resume=False)
    reached, losses, _ = run(out, steps=2, resume=False, overwrite=True)
    assert reached == 2 and len(losses) == 2  # the old run's log is gone, not mixed in
    assert [p.name for p in ckpt.complete_checkpoints(out / "checkpoints")] == ["step-00000002"]


def test_a_resume_with_a_changed_recipe_is_refused_naming_the_field(tmp_path: Path) -> None:
    out = tmp_path / "changed"
    run(out, steps=2)
    recipe = ToyRecipe()
    recipe.run.output_dir, recipe.optim.lr = str(out), 5e-3
    with pytest.raises(RunFolderError, match=r"optim.lr: 0.01 -> 0.005"):
        open_run(recipe, recipe.run)
    assert json.loads((ckpt.latest_checkpoint(out / "checkpoints") / "recipe.json").read_text())["optim"]["lr"] == 0.01
    reached, losses, _ = run(out, steps=4)  # more steps is a change a resume honours
    assert reached == 4 and len(losses) == 4


@pytest.mark.parametrize("damage", ["truncated", "empty", "no_rank_state", "torn_rank_state"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_that_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    out = tmp_path / damage
    run(out, steps=4)
    newest = ckpt.latest_checkpoint(out / "checkpoints")
    model_file = next(newest.rglob("mp_rank_00_model_states.pt"))
    if damage == "truncated":
        model_file.write_bytes(model_file.read_bytes()[:100])
    elif damage == "empty":
        model_file.write_bytes(b"")
    elif damage == "no_rank_state":
        (newest / "rank_state_00000.json").unlink()
    else:
        (newest / "rank_state_00000.json").write_text('{"step": 4, "rng": {"py')
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "train/lo')  # a torn last line must not block the resume either
    with caplog.at_level(logging.WARNING):
        reached, losses, _ = run(out, steps=6)
    assert reached == 6 and "step-00000004" in caplog.text and "does not load" in caplog.text
    assert "resumed from" in caplog.text and "step-00000002" in caplog.text
    assert len(losses) == 6  # steps 1-2 of the first run, 3-6 of this one: nothing mixed, nothing torn


def test_no_loadable_checkpoint_is_an_error_naming_each(tmp_path: Path) -> None:
    out = tmp_path / "none"
    run(out, steps=4)
    for path in ckpt.complete_checkpoints(out / "checkpoints"):
        (path / "rank_state_00000.json").unlink()
    with pytest.raises(CheckpointError, match=r"no checkpoint under .* loads: step-00000004: .*; step-00000002"):
        run(out, steps=6)


class Planted:
    """Unpickling this runs code: it writes a marker file (what an attacker's pickle would do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_a_checkpoint_is_refused_and_never_runs(tmp_path: Path) -> None:
    out = tmp_path / "planted"
    run(out, steps=2)
    marker = tmp_path / "marker"
    planted = ckpt.complete_checkpoints(out / "checkpoints")[0] / "mp_rank_00_model_states.pt"
    target = next(planted.parent.rglob(planted.name))
    torch.save({"module": Planted(marker)}, target)
    # the planted file is a real attack: its pickle calls os.system (read without running it)
    with zipfile.ZipFile(target) as archive:
        (pkl,) = [n for n in archive.namelist() if n.endswith("data.pkl")]
        strings = [arg for _, arg, _ in pickletools.genops(archive.read(pkl)) if isinstance(arg, str)]
    assert "posix system" in strings or {"posix", "system"} <= set(strings)  # GLOBAL or STACK_GLOBAL form
    with pytest.raises(UnsafeCheckpointError, match=rf"refused to load {target}: it refers to posix.system"):
        run(out, steps=4)
    assert not marker.exists()


class SafetensorsPart:
    """A part that saves the way transformers does: weights through safetensors (a private temporary file,
    mode 0600), its config with a plain ``open``."""

    def save_pretrained(self, save_directory: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, Path(save_directory) / "model.safetensors")
        (Path(save_directory) / "config.json").write_text("{}")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exported_files_get_the_umasks_ordinary_permissions(tmp_path: Path, umask: int) -> None:
    """model.safetensors used to be exported 0600 beside a 0644 config.json."""
    from loclip.training.export import export_atomic

    old = os.umask(umask)
    try:
        export_atomic(tmp_path / "run", SafetensorsPart())
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert modes == {"model.safetensors": 0o666 & ~umask, "config.json": 0o666 & ~umask}


def test_a_run_sets_its_threads_and_may_resume_with_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """run.threads sets torch's intra-op threads for the run and says so; it shapes neither model nor data, so a
    resume may change it."""
    out = tmp_path / "threads"
    with caplog.at_level(logging.INFO, logger="loclip.training"):
        run(out, steps=2, threads=1)
    assert torch.get_num_threads() == 1 and "threads: 1 intra-op thread(s)" in caplog.text
    reached, _, _ = run(out, steps=4, threads=2)
    assert reached == 4 and torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "two")  # a bad setting stops the run before anything is written
    recipe = ToyRecipe()
    recipe.run.output_dir = str(tmp_path / "never")
    with pytest.raises(ThreadSettingError, match="OMP_NUM_THREADS must be a positive integer, got 'two'"):
        open_run(recipe, recipe.run)
    assert not (tmp_path / "never").exists()
