"""Reading a synthetic split back: the world is a fixed benchmark, so a damaged split is a ``ValueError`` naming
the shard and the scene (``loclip-eval --synth-dir`` exits 2 on it), never a skip, a traceback, a Ghostscript
run or a decompression bomb."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from loclip.synth import read_conversations, read_split, write_split

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nnewpath 0 0 moveto 10 10 lineto stroke\n"
Members = list[tuple[tarfile.TarInfo, bytes]]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_split(out, "val", 3, seed=0)
    return out


@pytest.fixture
def ghostscript_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    calls: list = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a))
    return calls


def damaged(written: Path, tmp_path: Path, edit: Callable[[Members], Members]) -> Path:
    """A copy of the split whose shard's members went through ``edit``."""
    shutil.copytree(written / "val", tmp_path / "val")
    shard = tmp_path / "val" / "shard-000000.tar"
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in edit(members):
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return tmp_path


def replaced(name: str, data: bytes) -> Callable[[Members], Members]:
    return lambda members: [(m, data if m.name == name else d) for m, d in members]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def read_all(root: Path) -> list:
    return list(read_split(root, "val"))


def test_a_whole_split_reads_back(written: Path) -> None:
    records = read_all(written)
    assert [r.key for r in records] == ["val-00000000", "val-00000001", "val-00000002"]
    assert all(r.image.mode == "RGB" and r.labels.shape == r.image.size[::-1] for r in records)


@pytest.mark.parametrize("member", ["val-00000001.png", "val-00000001.seg.png"])
def test_an_eps_member_is_refused_and_ghostscript_never_runs(
    written: Path, tmp_path: Path, ghostscript_calls: list, member: str
) -> None:
    root = damaged(written, tmp_path, replaced(member, EPS))
    with pytest.raises(ValueError, match=r"shard-000000\.tar'?, scene 'val-00000001' .*not an image in an allowed"):
        read_all(root)
    assert ghostscript_calls == []


def test_an_image_larger_than_any_scene_is_refused_from_its_header(written: Path, tmp_path: Path) -> None:
    """A 12000 x 12000 PNG of ~20 KB used to decode to 144 megapixels (7 GB, 71 s) before a misleading error."""
    root = damaged(written, tmp_path, replaced("val-00000000.png", png_bytes(Image.new("1", (12000, 12000)))))
    with pytest.raises(
        ValueError,
        match=r"scene 'val-00000000' image: 12000 x 12000 = 144,000,000 pixels, over the "
        r"limit of 1,048,576 \(checked before decoding\)",
    ):
        read_all(root)


def drop(name: str) -> Callable[[Members], Members]:
    return lambda members: [(m, d) for m, d in members if m.name != name]


def test_a_scene_without_its_image_or_json_names_the_shard_and_the_scene(written: Path, tmp_path: Path) -> None:
    root = damaged(written, tmp_path, drop("val-00000002.png"))
    with pytest.raises(ValueError, match=r"000\.tar', scene 'val-00000002' has no 'png' member .*loclip-synth"):
        read_all(root)
    shutil.rmtree(root / "val")
    root = damaged(written, tmp_path, drop("val-00000000.json"))
    with pytest.raises(ValueError, match="scene 'val-00000000' has no 'json' member"):
        read_all(root)


def test_a_truncated_shard_is_a_clear_error(written: Path, tmp_path: Path) -> None:
    shutil.copytree(written / "val", tmp_path / "val")
    shard = tmp_path / "val" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"synthetic shard '.*shard-000000\.tar' cannot be read \(truncated"):
        read_all(tmp_path)
    shard.unlink()
    with pytest.raises(ValueError, match=r"shard-000000\.tar' cannot be read"):
        read_all(tmp_path)


def test_links_and_repeated_members_are_errors_not_skips(written: Path, tmp_path: Path) -> None:
    def link(members: Members) -> Members:
        info = tarfile.TarInfo("val-00000001.seg.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [(info, b"") if m.name == info.name else (m, d) for m, d in members]

    with pytest.raises(ValueError, match=r"'val-00000001\.seg\.png' \(symbolic link\) \(member/not_a_file\)"):
        read_all(damaged(written, tmp_path, link))
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(ValueError, match=r"'val-00000000\.json' \(member/duplicate\)"):
        read_all(damaged(written, tmp_path, lambda members: members[:3] + members[1:2] + members[3:]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: b"[" * 100_000, r"its \.json member nests its JSON too deeply to read; write the split again"),
        (lambda meta: b"{oops", r"its \.json member is not valid JSON: Expecting property name"),
        (lambda meta: b'{"caption": "\xff"}', r"its \.json member is not UTF-8 text \(byte 13\)"),
        (lambda meta: json.dumps({**meta, "long_captions": []}).encode(), r"its JSON's long_captions is not what"),
        (lambda meta: json.dumps({**meta, "objects": meta["objects"][1:]}).encode(), r"its JSON's objects is not what"),
        (
            lambda meta: json.dumps(
                {**meta, "objects": [{**meta["objects"][0], "colour": "mauve"}, *meta["objects"][1:]]}
            ).encode(),
            r"its JSON's objects\[0\] is not what",
        ),
        (
            lambda meta: json.dumps(
                {**meta, "regions": [{"bbox": [1, 2, 3], "phrase": "x"}, *meta["regions"][1:]]}
            ).encode(),
            r"its JSON's regions\[0\] is not what",
        ),
    ],
)
def test_a_scene_json_unlike_what_loclip_synth_writes_names_the_field(
    written: Path, tmp_path: Path, edit: Callable[[dict], bytes], message: str
) -> None:
    def change(members: Members) -> Members:
        return [(m, edit(json.loads(d)) if m.name == "val-00000001.json" else d) for m, d in members]

    with pytest.raises(ValueError, match=r"scene 'val-00000001'(:|,)? " + message):
        read_all(damaged(written, tmp_path, change))


def test_a_label_map_that_does_not_fit_its_scene_is_an_error(written: Path, tmp_path: Path) -> None:
    record = read_all(written)[0]
    width, height = record.image.size
    wrong_size = png_bytes(Image.new("L", (width + 1, height)))
    with pytest.raises(ValueError, match=rf"label map is a L image of {width + 1}x{height} pixels, expected L of"):
        read_all(damaged(written, tmp_path, replaced("val-00000000.seg.png", wrong_size)))
    shutil.rmtree(tmp_path / "val")
    too_many = np.full((height, width), len(record.meta["regions"]) + 1, dtype=np.uint8)
    with pytest.raises(ValueError, match="label map holds .* but the scene has"):
        read_all(damaged(written, tmp_path, replaced("val-00000000.seg.png", png_bytes(Image.fromarray(too_many)))))


def test_index_files_that_do_not_parse_or_point_outside_the_split(written: Path, tmp_path: Path) -> None:
    shutil.copytree(written / "val", tmp_path / "val")
    sizes = tmp_path / "val" / "sizes.json"
    sizes.write_text(json.dumps({"../../outside.tar": 3}))
    with pytest.raises(ValueError, match=r"sizes\.json' must map shard file names of its folder to counts"):
        read_all(tmp_path)
    sizes.write_text("[" * 100_000)
    with pytest.raises(ValueError, match=r"sizes\.json' nests its JSON too deeply to read; write the split"):
        read_all(tmp_path)
    (tmp_path / "val" / "conversations.json").write_bytes(b"[" * 100_000)
    with pytest.raises(ValueError, match=r"conversations\.json' nests its JSON too deeply"):
        read_conversations(tmp_path, "val")
