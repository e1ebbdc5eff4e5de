"""Writing and reading the world: byte-identical shards, the DESIGN.md schema through webdataset,
the conversation file, and clear errors for bad arguments (library and CLI)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image
from transformers import AutoTokenizer

from loclip.cli.synth import main
from loclip.synth import (
    COLOURS,
    SceneConfig,
    generate_scene,
    label_map,
    read_conversations,
    read_split,
    shard_paths,
    shard_record,
    write_split,
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical_different_seed_different(
    written: Path, tmp_path: Path, synth_seed: int, synth_config: SceneConfig
) -> None:
    write_split(tmp_path / "again", "train", 23, synth_seed, synth_config, shard_size=5)
    write_split(tmp_path / "other", "train", 23, synth_seed + 1, synth_config, shard_size=5)
    first, again, other = (_files(d / "train") for d in (written, tmp_path / "again", tmp_path / "other"))
    assert first == again
    assert first.keys() == other.keys()
    assert first["shard-000000.tar"] != other["shard-000000.tar"]


def test_layout_and_sizes(written: Path) -> None:
    sizes = json.loads((written / "train" / "sizes.json").read_text())
    assert sizes == {f"shard-{i:06d}.tar": 5 for i in range(4)} | {"shard-000004.tar": 3}
    assert sorted(p.name for p in (written / "train").glob("shard-*.tar")) == list(sizes)
    assert not list(written.rglob(".*tmp*"))  # temporary files were all renamed
    assert len(list((written / "train" / "images").glob("*.png"))) == 23
    with tarfile.open(written / "train" / "shard-000004.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        f"train-{i:08d}.{ext}" for i in (20, 21, 22) for ext in ("png", "json", "seg.png")
    ]
    # headers carry nothing from the machine or the clock, so reruns are byte-identical anywhere
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_webdataset_reads_the_schema(written: Path) -> None:
    urls = [str(p) for p in shard_paths(written, "train")]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == 23
    for sample in samples:
        meta, image = sample["json"], sample["png"]
        assert image.size == (meta["width"], meta["height"]) == (48, 48)
        assert isinstance(meta["caption"], str) and meta["caption"]
        assert isinstance(meta["long_captions"], list) and all(isinstance(c, str) for c in meta["long_captions"])
        assert len(meta["regions"]) == len(meta["objects"]) >= 1
        for region in meta["regions"]:
            x1, y1, x2, y2 = region["bbox"]
            assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48 and isinstance(region["phrase"], str)


def test_read_split_matches_a_scene_regenerated_alone(
    written: Path, synth_seed: int, synth_config: SceneConfig
) -> None:
    records = list(read_split(written, "train"))
    assert [r.key for r in records] == [f"train-{i:08d}" for i in range(23)]
    scene = generate_scene("train", 13, synth_seed, synth_config)
    assert records[13].meta == json.loads(json.dumps(shard_record(scene)))
    assert np.array_equal(np.asarray(records[13].image), scene.image)


def test_label_map_member_is_the_scenes_label_map(written: Path, synth_seed: int, synth_config: SceneConfig) -> None:
    with tarfile.open(written / "train" / "shard-000002.tar") as tar:
        seg = Image.open(io.BytesIO(tar.extractfile("train-00000011.seg.png").read()))  # type: ignore[union-attr]
    scene = generate_scene("train", 11, synth_seed, synth_config)
    assert seg.mode == "L" and np.array_equal(np.asarray(seg), scene.labels)
    assert scene.labels.max() == len(scene.objects) >= 1  # a real map: every object is visible
    records = list(read_split(written, "train"))
    assert np.array_equal(records[11].labels, scene.labels) and records[11].labels.dtype == np.uint8
    for record in records:  # every scene: label k + 1 is drawn in object k's colour, 0 is background
        pixels = np.asarray(record.image)
        for k, obj in enumerate(record.meta["objects"]):
            assert (pixels[record.labels == k + 1] == COLOURS[obj["colour"]]).all()
        assert label_map(record) is record.labels


def _strip_label_maps(src: Path, dst: Path) -> None:
    """Copy a split, rewriting its shards without the ``seg.png`` members (as shards written before them)."""
    shutil.copytree(src, dst)
    for shard in dst.glob("shard-*.tar"):
        with tarfile.open(shard) as tar:
            kept = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if not m.name.endswith(".seg.png")]
        with tarfile.open(shard, "w") as tar:
            for member, data in kept:
                tar.addfile(member, io.BytesIO(data))


def test_label_map_is_regenerated_for_old_shards(written: Path, tmp_path: Path) -> None:
    _strip_label_maps(written / "train", tmp_path / "train")
    old, new = list(read_split(tmp_path, "train")), list(read_split(written, "train"))
    assert all(r.labels is None for r in old)
    for record, stored in zip(old, new):
        assert np.array_equal(label_map(record), stored.labels)


def test_label_map_refuses_pixels_its_seed_does_not_redraw(written: Path, tmp_path: Path) -> None:
    record = replace(next(read_split(written, "train")), labels=None)
    pixels = np.asarray(record.image).copy()
    pixels[0, 0] = 255 - pixels[0, 0]  # one pixel changed
    with pytest.raises(ValueError, match="scene 'train-00000000' has no stored label map and its seed does not"):
        label_map(replace(record, image=Image.fromarray(pixels)))
    # scenes written with settings other than the defaults (here at most 2 objects) cannot be redrawn either
    write_split(tmp_path, "val", 1, 0, SceneConfig(image_size=48, min_objects=2, max_objects=2))
    other = replace(next(read_split(tmp_path, "val")), labels=None)
    with pytest.raises(ValueError, match="scene 'val-00000000' has no stored label map"):
        label_map(other)


def test_written_boxes_are_tight_in_the_decoded_pixels(written: Path) -> None:
    """Decode the PNGs: a region of a colour no other object has is exactly the pixels of that colour."""
    checked = 0
    for record in read_split(written, "novel"):
        pixels = np.asarray(record.image)
        colours = [o["colour"] for o in record.meta["objects"]]
        for obj, region in zip(record.meta["objects"], record.meta["regions"]):
            if colours.count(obj["colour"]) == 1:
                ys, xs = np.nonzero((pixels == COLOURS[obj["colour"]]).all(-1))
                assert region["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                checked += 1
    assert checked >= 6


def test_conversations_file(written: Path) -> None:
    records = read_conversations(written, "train")
    assert [r["id"] for r in records] == [f"train-{i:08d}" for i in range(23)]
    for record in records:
        assert (written / "train" / record["image"]).is_file()
        assert record["conversations"][0] == {"from": "human", "value": record["conversations"][0]["value"]}
        assert record["conversations"][0]["value"].startswith("<image>\n")
        n_regions = sum(t["value"].count("<region>") for t in record["conversations"])
        assert len(record["boxes"]) == n_regions and all(len(b) == 4 for b in record["boxes"])


def test_rewrite_removes_stale_shards(tmp_path: Path, synth_config: SceneConfig) -> None:
    write_split(tmp_path, "val", 12, 0, synth_config, shard_size=4)
    write_split(tmp_path, "val", 5, 0, synth_config, shard_size=4)
    assert sorted(p.name for p in (tmp_path / "val").glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert len(list(read_split(tmp_path, "val"))) == 5


def test_interrupted_run_leaves_no_partial_shard_and_no_sizes(tmp_path: Path, synth_config: SceneConfig) -> None:
    write_split(tmp_path, "test", 3, 0, synth_config)
    done = 0

    def interrupt(n: int) -> None:
        nonlocal done
        done += n
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_split(tmp_path, "test", 20, 0, synth_config, shard_size=5, progress=interrupt)
    names = sorted(p.name for p in (tmp_path / "test").iterdir() if p.is_file())
    assert names == ["shard-000000.tar"]  # the full shard only: no temporary files, no index files
    with pytest.raises(ValueError, match="no 'test' split"):
        list(read_split(tmp_path, "test"))
    write_split(tmp_path, "test", 20, 0, synth_config, shard_size=5)  # the folder is loclip's: a rerun goes on
    assert len(list(read_split(tmp_path, "test"))) == 20


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_scenes": 0}, "num_scenes"),
        ({"num_scenes": -3}, "num_scenes"),
        ({"split": "holdout"}, "split"),
        ({"shard_size": 0}, "shard_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_write_split_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"out_dir": tmp_path, "split": "train", "num_scenes": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        write_split(**args)


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="out_dir .* not a writable directory"):
        write_split(blocker / "out", "train", 2, 0)


def test_read_missing_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no 'test' split"):
        list(read_split(tmp_path, "test"))


def test_cli_writes_every_split_and_a_loadable_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(
        [
            "--out",
            str(tmp_path),
            "--scenes",
            "20",
            "--seed",
            "3",
            "--image-size",
            "48",
            "--shard-size",
            "8",
            "--no-progress",
        ]
    )
    sizes = {s: json.loads((tmp_path / s / "sizes.json").read_text()) for s in ("train", "val", "test", "novel")}
    counts = {s: sum(v.values()) for s, v in sizes.items()}
    assert counts == {"train": 20, "val": 2, "test": 2, "novel": 2}
    world = json.loads((tmp_path / "world.json").read_text())
    assert world["seed"] == 3 and world["config"]["image_size"] == 48 and len(world["novel_pairs"]) == 8
    tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert tok.unk_token_id not in tok(next(read_split(tmp_path, "val")).meta["long_captions"][0])["input_ids"]
    assert "20 scenes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scenes", "0"], "scenes = 0: expected an integer >= 1"),
        (["--scenes", "-2"], "scenes = -2: expected an integer >= 1"),
        (["--scenes", "many"], "scenes = 'many': expected an integer >= 1"),
        (
            ["--scenes", "3", "--split", "holdout"],
            "split = 'holdout': expected one of ['train', 'val', 'test', 'novel', 'all']",
        ),
        (["--scenes", "3", "--image-size", "16"], "image_size = 16: expected an integer in [32, 1024]"),
    ],
)
def test_cli_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        main(["--out", str(blocker), "--scenes", "3"])
    assert "not a writable directory" in capsys.readouterr().err


def test_image_size_flows_through(tmp_path: Path) -> None:
    write_split(tmp_path, "test", 2, 0, SceneConfig(image_size=96))
    record = next(read_split(tmp_path, "test"))
    assert record.image.size == (96, 96) and record.meta["width"] == 96


def _someones_dataset(root: Path) -> Path:
    """A folder in webdataset's common naming that loclip did not write (no world.json of loclip's)."""
    (root / "train" / "images").mkdir(parents=True)
    for name in ("shard-000000.tar", "shard-000007.tar", "sizes.json", "images/train-00000001.png"):
        (root / "train" / name).write_bytes(f"someone's {name}".encode())
    (root / "notes.txt").write_text("mine")
    return root


@pytest.mark.parametrize("split", ["train", "all"])
def test_cli_refuses_a_folder_of_someone_elses_shards_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture, split: str
) -> None:
    """It used to overwrite shard-000000.tar, delete shard-000007.tar and sizes.json, overwrite the image,
    and exit 0."""
    before = _files(_someones_dataset(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--scenes", "4", "--split", split, "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "holds files that loclip did not write" in err
    named = ("train/sizes.json", "train/shard-000000.tar", "train/shard-000007.tar", "train/images/train-00000001.png")
    assert all(name in err for name in named)
    assert _files(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "train"]


@pytest.mark.parametrize(
    "planted",
    [
        "world.json",
        "val/images/val-00000002.png",
        "val/conversations.json",
        "tokenizer/tokenizer.json",
        "tokenizer/my_vocab.txt",
    ],
)
def test_cli_refuses_any_file_it_would_replace_in_a_folder_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture, planted: str
) -> None:
    (tmp_path / planted).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / planted).write_text("someone's")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--scenes", "30", "--no-progress"])
    assert planted in capsys.readouterr().err and _files(tmp_path) == {planted: b"someone's"}


def test_library_writers_refuse_a_folder_they_did_not_write(tmp_path: Path, synth_config: SceneConfig) -> None:
    from loclip.synth.quickstart import ensure_world

    before = _files(_someones_dataset(tmp_path))
    with pytest.raises(ValueError, match=r"out_dir .* holds files that loclip did not write.*shard-000000\.tar"):
        write_split(tmp_path, "train", 3, 0, synth_config)
    with pytest.raises(ValueError, match=r"the synthetic world folder .* holds files that loclip did not write"):
        ensure_world(tmp_path, {"train": 3, "val": 2}, 0, synth_config, 16)
    assert _files(tmp_path) == before
    write_split(tmp_path, "val", 2, 0, synth_config)  # a split with nothing in the way is written
    assert (
        len(list(read_split(tmp_path, "val"))) == 2
        and _files(tmp_path)["train/shard-000000.tar"] == before["train/shard-000000.tar"]
    )


def test_a_world_loclip_wrote_is_rewritten_keeping_files_it_did_not_write(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--scenes", "12", "--split", "train", "--shard-size", "4", "--no-progress"])
    (tmp_path / "train" / "notes.txt").write_text("mine")
    legacy = json.loads((tmp_path / "world.json").read_text())
    del legacy["generator"]  # world.json as loclip-synth wrote it before it named itself
    (tmp_path / "world.json").write_text(json.dumps(legacy))
    main(["--out", str(tmp_path), "--scenes", "5", "--split", "train", "--shard-size", "4", "--no-progress"])
    assert sorted(p.name for p in (tmp_path / "train").glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert (tmp_path / "train" / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "world.json").read_text())["generator"] == "loclip-synth"
