"""``loclip-eval`` end to end on a tiny saved model: COCO/RefCOCO/class-folder files and a synthetic split; what
to evaluate is the library's ``EvalPlan`` under ``--plan.*`` (the flat flags it replaced kept)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from loclip.cli.evaluate import EvalCommand, main, parser
from loclip.core.recipe import parse_command
from loclip.eval.config import TASKS, EvalPlan


def test_help_documents_every_task(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in (
        *TASKS,
        "--region-method",
        "--long-captions",
        "--strict-captions",
        "--min-box-size",
        "--out",
        "--labels",
        "--seg-image-dir",
        "--seg-mask-dir",
        "--seg-classes",
        "--seg-ignore-index",
        "--seg-reduce-zero-label",
        "--plan.seg_reduce_zero_label",
        "--plan.synth_dir",
        "--plan.task",
    ):
        assert word in text


def test_the_plan_reads_the_same_under_its_new_and_old_spellings() -> None:
    new = [
        "--model",
        "m",
        "--plan.task",
        "grounding",
        "segmentation",
        "--plan.synth_dir",
        "w",
        "--plan.labels",
        "shape",
        "--plan.seg_reduce_zero_label",
        "--plan.max_samples",
        "3",
        "--plan.progress",
        "false",
    ]
    old = [
        "--model",
        "m",
        "--task",
        "grounding",
        "--task",
        "segmentation",
        "--synth-dir",
        "w",
        "--labels",
        "shape",
        "--seg-reduce-zero-label",
        "--max_samples",
        "3",
        "--no-progress",
    ]
    commands = [parse_command(parser(), EvalCommand, argv)[0] for argv in (new, old)]
    assert commands[0] == commands[1]
    assert commands[0].plan == EvalPlan(
        task=["grounding", "segmentation"],
        synth_dir="w",
        labels="shape",
        seg_reduce_zero_label=True,
        max_samples=3,
        progress=False,
    )


def test_real_format_datasets(model_dir: Path, coco: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "res" / "results.json"
    rc = main(
        [
            "--model",
            str(model_dir),
            "--task",
            "zeroshot",
            "retrieval",
            "--task",
            "region_cls",
            "region_retrieval",
            "grounding",
            "--zeroshot-dir",
            str(coco["folder"]),
            "--captions-json",
            str(coco["captions"]),
            "--instances-json",
            str(coco["instances"]),
            "--image-dir",
            str(coco["images"]),
            "--refs-json",
            str(coco["refs"]),
            "--region-method",
            "roialign",
            "--batch-size",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr()
    assert "| zeroshot | folder:classes | top1 |" in printed.out
    assert "missing_image" in printed.err  # skipped samples are announced
    report = json.loads(out.read_text())
    tasks = [r["task"] for r in report["results"]]
    assert tasks == ["zeroshot", "retrieval", "region_cls", "region_retrieval", "grounding"]
    by_task = {r["task"]: r for r in report["results"]}
    assert set(by_task["zeroshot"]["metrics"]) == {"top1", "top5", "mean_per_class"}
    assert by_task["zeroshot"]["info"]["num_images"] == 6
    assert by_task["retrieval"]["info"] == {
        "num_images": 2,
        "num_captions": 3,
        "num_overlong_captions": 0,
        "long_captions": "subcaption",
        "match_identical": True,
        "skipped": {"missing_image": 1},
    }
    assert by_task["region_cls"]["info"]["skipped"] == {"crowd_box": 1, "tiny_box": 1, "missing_image": 1}
    assert by_task["region_cls"]["info"]["region_method"] == "roialign"
    assert by_task["grounding"]["info"]["num_queries"] == 4
    assert report["settings"]["max_samples"] is None
    assert out.with_suffix(".md").read_text().startswith("| task | dataset | metric | value (%) |")
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.json", "results.md"]  # no temp left


def test_synthetic_split(model_dir: Path, synth_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "synth.json"
    rc = main(
        [
            "--model",
            str(model_dir),
            "--plan.task",
            "synthetic",
            "retrieval",
            "region_cls",
            "region_retrieval",
            "grounding",
            "--plan.synth_dir",
            str(synth_dir),
            "--plan.max_samples",
            "8",
            "--plan.progress",
            "false",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["task"], r["dataset"]) for r in results] == [
        ("synthetic", "synthetic:val"),
        ("retrieval", "synthetic"),
        ("retrieval", "synthetic-long"),
        ("region_cls", "synthetic-regions"),
        ("region_retrieval", "synthetic-regions"),
        ("grounding", "synthetic-grounding"),
    ]
    assert set(results[0]["metrics"]) == {"region_acc", "grounding_acc50", "retrieval_r1", "long_retrieval_r1"}
    assert results[0]["info"]["num_scenes"] == 8
    assert results[3]["info"]["num_classes"] == 128 and results[3]["info"]["num_templates"] == 1
    assert results[2]["info"]["num_overlong_captions"] > 0  # long captions exceed the 24-token context
    assert "| synthetic | synthetic:val | region_acc |" in capsys.readouterr().out


def test_segmentation_and_multilabel_on_the_synthetic_world(
    model_dir: Path, synth_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "dense.json"
    rc = main(
        [
            "--model",
            str(model_dir),
            "--task",
            "segmentation",
            "multilabel",
            "--synth-dir",
            str(synth_dir),
            "--labels",
            "shape",
            "--max-samples",
            "4",
            "--batch-size",
            "3",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    seg, multi = report["results"]
    assert (seg["task"], seg["dataset"]) == ("segmentation", "synthetic-segmentation-shape")
    assert set(seg["metrics"]) == {"mIoU", "pixel_acc", "mean_acc"}
    assert seg["info"]["num_images"] == 4 and seg["info"]["num_classes"] == 9  # background + 8 shapes
    assert set(seg["info"]["class_iou"]) <= {
        "background",
        "circle",
        "square",
        "triangle",
        "diamond",
        "star",
        "cross",
        "hexagon",
        "ring",
    }
    assert (multi["task"], multi["dataset"]) == ("multilabel", "synthetic-multilabel-shape")
    assert set(multi["metrics"]) == {"mAP"} and multi["info"]["num_classes"] == 8
    assert report["settings"]["labels"] == "shape"
    table, printed = out.with_suffix(".md").read_text(), capsys.readouterr().out
    for row in (
        "| segmentation | synthetic-segmentation-shape | mIoU |",
        "| segmentation | synthetic-segmentation-shape | pixel_acc |",
        "| multilabel | synthetic-multilabel-shape | mAP |",
    ):
        assert row in table and row in printed


def test_segmentation_and_multilabel_on_real_formats(
    model_dir: Path, coco: dict[str, Path], ade: dict[str, Path], synth_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "real.json"
    rc = main(
        [
            "--model",
            str(model_dir),
            "--task",
            "multilabel",
            "segmentation",
            "--seg-image-dir",
            str(ade["images"]),
            "--seg-mask-dir",
            str(ade["masks"]),
            "--seg-classes",
            str(ade["classes"]),
            "--seg-reduce-zero-label",
            "--instances-json",
            str(coco["instances"]),
            "--image-dir",
            str(coco["images"]),
            "--synth-dir",
            str(synth_dir),  # the files win over the synthetic world
            "--templates",
            str(_templates(tmp_path)),
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "missing_mask" in err and "crowd_box" in err  # skips are announced
    multi, seg = json.loads(out.read_text())["results"]
    assert (multi["task"], multi["dataset"]) == ("multilabel", "coco-multilabel:instances.json")
    assert multi["info"] == {
        "num_images": 2,
        "num_classes": 3,
        "classes_present": 3,
        "skipped": {"crowd_box": 1, "missing_image": 1},
    }
    assert 0 <= multi["metrics"]["mAP"] <= 1
    assert (seg["task"], seg["dataset"]) == ("segmentation", "segmentation:masks")
    assert seg["info"]["num_images"] == 2 and seg["info"]["num_classes"] == 3
    assert seg["info"]["skipped"] == {"missing_mask": 1}
    assert set(seg["info"]["class_iou"]) <= {"wall", "building", "sky"}
    assert all(0 <= v <= 1 for v in seg["metrics"].values())
    assert "| segmentation | segmentation:masks | mIoU |" in out.with_suffix(".md").read_text()


def _templates(tmp_path: Path) -> Path:
    path = tmp_path / "templates.txt"
    path.write_text("a photo of a {}.\n")
    return path


def test_a_bad_mask_stops_the_run_naming_the_file(model_dir: Path, ade: dict[str, Path], capsys) -> None:
    Image.new("RGB", (20, 50)).save(ade["masks"] / "b.png")
    rc = main(
        [
            "--model",
            str(model_dir),
            "--task",
            "segmentation",
            "--seg-image-dir",
            str(ade["images"]),
            "--seg-mask-dir",
            str(ade["masks"]),
            "--seg-classes",
            str(ade["classes"]),
            "--seg-reduce-zero-label",
            "--no-progress",
        ]
    )
    assert rc == 2  # after a.png was scored
    assert f"loclip-eval: error: mask '{ade['masks'] / 'b.png'}' is mode RGB" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--task", "segmentation"],
            "task segmentation needs seg_image_dir, seg_mask_dir and seg_classes, or synth_dir",
        ),
        (
            ["--task", "segmentation", "--seg-classes", "{ade_classes}", "--synth-dir", "{tmp}"],
            "task segmentation needs seg_image_dir and seg_mask_dir",
        ),
        (
            [
                "--task",
                "segmentation",
                "--seg-image-dir",
                "{ade_images}",
                "--seg-mask-dir",
                "{tmp}/nope",
                "--seg-classes",
                "{ade_classes}",
            ],
            "seg_mask_dir: no such directory",
        ),
        (
            [
                "--task",
                "segmentation",
                "--seg-image-dir",
                "{ade_images}",
                "--seg-mask-dir",
                "{ade_masks}",
                "--seg-classes",
                "{tmp}/nope.txt",
            ],
            "seg_classes: no such file",
        ),
        (
            [
                "--task",
                "segmentation",
                "--seg-image-dir",
                "{ade_images}",
                "--seg-mask-dir",
                "{ade_masks}",
                "--seg-classes",
                "{ade_classes}",
                "--seg-ignore-index",
                "2",
            ],
            "seg_ignore_index 2 is also a class index (0..2 for 3 classes)",
        ),
        (
            [
                "--task",
                "segmentation",
                "--seg-image-dir",
                "{ade_images}",
                "--seg-mask-dir",
                "{tmp}",
                "--seg-classes",
                "{ade_classes}",
            ],
            "has no images to evaluate (skipped: {{'missing_mask': 3}})",
        ),
        (["--task", "multilabel"], "task multilabel needs synth_dir"),
        (["--task", "multilabel", "--instances-json", "{instances}"], "task multilabel needs image_dir"),
        (
            ["--task", "multilabel", "--instances-json", "{captions}", "--image-dir", "{images}"],
            "instances_json: '{captions}' needs a 'categories' list",
        ),
        (["--task", "segmentation", "--synth-dir", "{tmp}"], "no 'val' split"),
    ],
)
def test_dense_task_inputs_fail_before_the_model_loads(
    model_dir: Path,
    coco: dict[str, Path],
    ade: dict[str, Path],
    tmp_path: Path,
    capsys,
    monkeypatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.setattr("loclip.cli.evaluate.load_model", lambda *a: pytest.fail("the model was loaded"))
    paths = {"tmp": tmp_path, **{k: str(v) for k, v in coco.items()}, **{f"ade_{k}": str(v) for k, v in ade.items()}}
    rc = main(["--model", str(model_dir), "--no-progress", *[a.format(**paths) for a in extra]])
    assert rc == 2
    err = capsys.readouterr().err
    assert "loclip-eval: error: " in err and message.format(**paths) in err


def test_unknown_label_set_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "x", "--task", "multilabel", "--labels", "size"])
    assert exit_info.value.code == 2
    assert "labels = 'size': expected one of" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "retrieval"], "task retrieval needs synth_dir"),
        (["--plan.task", "zeroshot"], "task zeroshot needs zeroshot_dir"),
        (
            ["--task", "retrieval", "--captions-json", "{tmp}/nope.json", "--image-dir", "{tmp}"],
            "captions_json: no such file",
        ),
        (["--task", "region_cls", "--instances-json", "{instances}"], "task region_cls needs image_dir"),
        (
            ["--task", "grounding", "--refs-json", "{refs}", "--image-dir", "{tmp}/empty"],
            "image_dir: no such directory",
        ),
        (
            ["--task", "retrieval", "--captions-json", "{captions}", "--image-dir", "{tmp}"],
            "dataset 'coco-captions:captions.json' has no images to evaluate",
        ),
        (["--task", "synthetic", "--synth-dir", "{tmp}"], "no 'val' split"),
        (
            ["--task", "zeroshot", "--zeroshot-dir", "{folder}", "--templates", "{instances}"],
            "must contain exactly one",
        ),
    ],
)
def test_bad_inputs_name_the_field(
    model_dir: Path, coco: dict[str, Path], tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    paths = {"tmp": tmp_path, **{k: str(v) for k, v in coco.items()}}
    rc = main(["--model", str(model_dir), "--no-progress", *[a.format(**paths) for a in extra]])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_bad_model_dir(tmp_path: Path, synth_dir: Path, capsys) -> None:
    assert main(["--model", str(tmp_path / "none"), "--task", "synthetic", "--synth-dir", str(synth_dir)]) == 2
    assert "--model: no such directory" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), "--task", "synthetic", "--synth-dir", str(synth_dir)]) == 2
    assert "has no config.json" in capsys.readouterr().err


def test_unknown_task_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "x", "--task", "captioning"])
    assert exit_info.value.code == 2
    assert "task[0] = 'captioning': expected one of" in capsys.readouterr().err


def _corrupt(model_dir: Path, damage: str) -> None:
    """One kind of broken model directory a user might hand over (see loclip.core.model_dir)."""
    from safetensors.torch import load_file, save_file

    weights, config = model_dir / "model.safetensors", model_dir / "config.json"
    if damage == "corrupt header":
        weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    elif damage == "pickle only":
        weights.unlink()
        (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n.")  # would run os.system
    elif damage == "config list":
        config.write_text("[1, 2]")
    elif damage == "config not json":
        config.write_text("model_type: loclip")
    elif damage in ("wrong shape", "missing weight"):
        tensors = load_file(weights)
        if damage == "wrong shape":
            tensors["logit_scale"] = torch.zeros(3, 3)
        else:
            del tensors["logit_scale"]
        save_file(tensors, weights, metadata={"format": "pt"})
    else:  # mislabelled: an encoder folder whose config.json says llama
        config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "llama"}))


MODEL_DIR_ERRORS = {
    "corrupt header": "model.safetensors is not a readable safetensors file: Error while deserializing header",
    "pickle only": "holds only pickle weights ['pytorch_model.bin']; loclip loads safetensors only",
    "config list": "config.json holds a JSON list, not an object of settings",
    "config not json": "config.json is not valid JSON: Expecting value",
    "wrong shape": "its weights do not fit the model its config.json describes: 1 of the wrong shape "
    "['logit_scale (3, 3) for (1,)']",
    "missing weight": "its weights do not fit the model its config.json describes: missing 1 ['logit_scale']",
    "mislabelled": "has model_type 'llama'; expected 'loclip' (a LoclipModel, from loclip-pretrain; score a loclip "
    "MLLM with the mllm task)",
}


@pytest.mark.parametrize("damage", list(MODEL_DIR_ERRORS))
def test_a_broken_model_directory_is_one_line_and_exit_2(
    model_dir: Path, synth_dir: Path, tmp_path: Path, capsys, monkeypatch, damage: str
) -> None:
    import transformers.models.llama.modeling_llama as llama

    def no_llama(*args, **kwargs):  # the mislabelled folder used to build a default 7B Llama (22 GB)
        raise AssertionError("a Llama was built")

    monkeypatch.setattr(llama.LlamaModel, "__init__", no_llama)
    broken = Path(shutil.copytree(model_dir, tmp_path / "model"))
    _corrupt(broken, damage)
    rc = main(
        [
            "--model",
            str(broken),
            "--task",
            "synthetic",
            "--synth-dir",
            str(synth_dir),
            "--max-samples",
            "2",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "LOAD REPORT" not in err
    last = err.strip().splitlines()[-1]  # above it, at most transformers' "Loading weights" progress bar
    assert last.startswith(f"loclip-eval: error: --model {str(broken)!r}") and MODEL_DIR_ERRORS[damage] in last


def test_the_task_names_moved_to_the_plan_keep_their_old_path_with_a_warning() -> None:
    import loclip.cli.evaluate as command

    with pytest.warns(DeprecationWarning, match="moved to loclip.eval.config.TASKS"):
        assert command.TASKS is TASKS
