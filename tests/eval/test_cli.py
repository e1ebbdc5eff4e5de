"""``loclip-eval`` end to end on a tiny saved model: COCO/RefCOCO/class-folder files and a synthetic split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loclip.cli.evaluate import TASKS, main


def test_help_documents_every_task(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in (*TASKS, "--region-method", "--long-captions", "--strict-captions", "--min-box-size", "--out"):
        assert word in text


def test_real_format_datasets(model_dir: Path, coco: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "res" / "results.json"
    rc = main([
        "--model", str(model_dir), "--task", "zeroshot", "retrieval", "--task", "region_cls", "region_retrieval",
        "grounding", "--zeroshot-dir", str(coco["folder"]), "--captions-json", str(coco["captions"]),
        "--instances-json", str(coco["instances"]), "--image-dir", str(coco["images"]),
        "--refs-json", str(coco["refs"]), "--region-method", "roialign", "--batch-size", "2",
        "--no-progress", "--out", str(out),
    ])
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
        "num_images": 2, "num_captions": 3, "num_overlong_captions": 0, "long_captions": "subcaption",
        "match_identical": True, "skipped": {"missing_image": 1}}
    assert by_task["region_cls"]["info"]["skipped"] == {"crowd_box": 1, "tiny_box": 1, "missing_image": 1}
    assert by_task["region_cls"]["info"]["region_method"] == "roialign"
    assert by_task["grounding"]["info"]["num_queries"] == 4
    assert report["settings"]["max_samples"] is None
    assert out.with_suffix(".md").read_text().startswith("| task | dataset | metric | value (%) |")
    assert sorted(p.name for p in out.parent.iterdir()) == ["results.json", "results.md"]  # no temp left


def test_synthetic_split(model_dir: Path, synth_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "synth.json"
    rc = main(["--model", str(model_dir), "--task", "synthetic", "retrieval", "region_cls", "region_retrieval",
               "grounding", "--synth-dir", str(synth_dir), "--max-samples", "8", "--no-progress",
               "--out", str(out)])
    assert rc == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["task"], r["dataset"]) for r in results] == [
        ("synthetic", "synthetic:val"), ("retrieval", "synthetic"), ("retrieval", "synthetic-long"),
        ("region_cls", "synthetic-regions"), ("region_retrieval", "synthetic-regions"),
        ("grounding", "synthetic-grounding")]
    assert set(results[0]["metrics"]) == {"region_acc", "grounding_acc50", "retrieval_r1", "long_retrieval_r1"}
    assert results[0]["info"]["num_scenes"] == 8
    assert results[3]["info"]["num_classes"] == 128 and results[3]["info"]["num_templates"] == 1
    assert results[2]["info"]["num_overlong_captions"] > 0  # long captions exceed the 24-token context
    assert "| synthetic | synthetic:val | region_acc |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "retrieval"], "--task retrieval needs --synth-dir"),
        (["--task", "zeroshot"], "--task zeroshot needs --zeroshot-dir"),
        (["--task", "retrieval", "--captions-json", "{tmp}/nope.json", "--image-dir", "{tmp}"],
         "captions_json: no such file"),
        (["--task", "region_cls", "--instances-json", "{instances}"], "--task region_cls needs --image-dir"),
        (["--task", "grounding", "--refs-json", "{refs}", "--image-dir", "{tmp}/empty"],
         "image_dir: no such directory"),
        (["--task", "retrieval", "--captions-json", "{captions}", "--image-dir", "{tmp}"],
         "dataset 'coco-captions:captions.json' has no images to evaluate"),
        (["--task", "synthetic", "--synth-dir", "{tmp}"], "no 'val' split"),
        (["--task", "zeroshot", "--zeroshot-dir", "{folder}", "--templates", "{instances}"],
         "must contain exactly one"),
    ],
)
def test_bad_inputs_name_the_field(model_dir: Path, coco: dict[str, Path], tmp_path: Path, capsys,
                                   extra: list[str], message: str) -> None:
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
