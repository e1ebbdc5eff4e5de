"""The shard format: deterministic atomic writes, reads that group members into samples, key splitting."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from loclip.shards.read import iter_samples, open_source, split_name
from loclip.shards.write import ShardWriter, json_bytes, remove_partial

SAMPLES = [("a", {"png": b"\x89PNG1", "json": json_bytes({"caption": "é"})}),
           ("dir/b", {"seg.png": b"mask", "json": b"{}"})]


def write(path: Path) -> None:
    with ShardWriter(path) as shard:
        for key, files in SAMPLES:
            shard.add(key, files)
        shard.commit()


def test_round_trip_keeps_samples_in_order_and_the_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    write(tmp_path / "one.tar")
    write(tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with open_source(str(tmp_path / "one.tar")) as stream:
        assert list(iter_samples(stream)) == SAMPLES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tar", "two.tar"]  # no temporary file left


def test_a_failed_write_leaves_nothing_under_the_real_name(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path / "x.tar") as shard:
            shard.add("a", {"json": b"{}"})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".x.tar.tmp-123").write_bytes(b"left by a killed run")
    assert [p.name for p in remove_partial(tmp_path)] == [".x.tar.tmp-123"] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, expected", [
    ("a.png", ("a", "png")), ("d/e/k.SEG.PNG", ("d/e/k", "seg.png")), ("x.y/z.json", ("x.y/z", "json")),
    ("noext", None), (".hidden", None), ("dir/", None),
])
def test_split_name_follows_webdataset(name: str, expected) -> None:
    assert split_name(name) == expected


def test_members_without_an_extension_are_reported_and_skipped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("k.json", "README", "k.png"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    buf.seek(0)
    bad: list[str] = []
    assert list(iter_samples(buf, bad.append)) == [("k", {"json": b"x", "png": b"x"})]
    assert bad == ["README"]
