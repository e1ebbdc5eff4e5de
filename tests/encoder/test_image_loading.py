"""The one way loclip opens a user's image: raster formats only, the pixel count checked before decoding, and
image paths kept to regular files inside their folder."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import EpsImagePlugin, Image

from loclip.core.image_loading import (
    ImageRefused,
    ImageTooLarge,
    open_image,
    open_raster,
    resolve_image_path,
    to_rgb,
)

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nnewpath 0 0 moveto 10 10 lineto stroke\n"


@pytest.fixture
def ghostscript_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Records every call PIL makes to Ghostscript (instead of running it)."""
    calls: list[tuple] = []

    def fake(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("Ghostscript ran")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", fake)
    return calls


def bomb_png(side: int = 12000) -> bytes:
    """A 1-bit PNG of side x side pixels: a few KB on disk, side^2 bytes once decoded as RGB x3."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def test_plain_pil_would_hand_an_eps_to_ghostscript(ghostscript_calls: list) -> None:
    with pytest.raises(RuntimeError, match="Ghostscript ran"):
        Image.open(io.BytesIO(EPS)).load()  # what happened before: any format PIL knows
    assert ghostscript_calls


@pytest.mark.parametrize("source", ["bytes", "path", "to_rgb"])
def test_an_eps_is_refused_and_ghostscript_never_runs(tmp_path: Path, ghostscript_calls: list, source: str) -> None:
    (tmp_path / "x.eps").write_bytes(EPS)
    with pytest.raises(ImageRefused, match=r"not an image in an allowed format \(JPEG, PNG") as error:
        if source == "bytes":
            open_raster(EPS, "upload")
        elif source == "path":
            open_image(tmp_path / "x.eps", "upload")
        else:
            to_rgb(str(tmp_path / "x.eps"), "upload")
    assert error.value.reason == "image_format" and not ghostscript_calls


def test_a_decompression_bomb_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bomb_png()
    assert len(data) < 100_000  # small on disk
    decoded: list[int] = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(ImageTooLarge, match=r"12000 x 12000 = 144,000,000 pixels, over the limit of 64,000,000") as e:
        open_raster(data, "bomb.png")
    assert e.value.size == (12000, 12000) and e.value.reason == "image_too_large" and not decoded
    small = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(small, format="PNG")
    monkeypatch.undo()
    assert open_raster(small.getvalue(), "ok.png", max_pixels=600).size == (30, 20)
    with pytest.raises(ImageTooLarge):
        open_raster(small.getvalue(), "ok.png", max_pixels=599)


def test_truncated_and_non_image_bytes_are_clear_errors() -> None:
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, format="PNG")
    with pytest.raises(ImageRefused, match="cannot decode the image") as e:
        open_raster(good.getvalue()[:80], "cut.png")
    assert e.value.reason == "image_unreadable"
    with pytest.raises(ImageRefused, match="not an image in an allowed format") as e:
        open_raster(b"hello, world", "note.txt")
    assert e.value.reason == "image_format"


def test_image_paths_stay_regular_files_inside_their_folder(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", root / "link.png")
    os.mkfifo(root / "pipe.png")
    assert resolve_image_path(root, "sub/a.png", "r") == (root / "sub" / "a.png").resolve()
    cases = {
        "../secret.png": "image_outside_root",
        "/dev/zero": "image_outside_root",
        "link.png": "image_outside_root",
        "pipe.png": "image_not_a_file",
        "sub": "image_not_a_file",
        "missing.png": "image_missing",
        "": "image_path",
        3: "image_path",
    }
    for relative, reason in cases.items():
        with pytest.raises(ImageRefused) as e:
            resolve_image_path(root, relative, "record 7")
        assert e.value.reason == reason and "record 7" in str(e.value), relative


def test_a_refused_image_path_is_quoted_cut_short() -> None:
    """A data file's image path is the user's value: quoted through ``shown_path``, so a megabyte-long one gives a
    one-line message that still ends with what was refused."""
    long = "a/" * 500_000 + "x.png"
    with pytest.raises(ImageRefused) as e:
        resolve_image_path("/nonexistent-root", long, "record 7")
    message = str(e.value)
    assert len(message) < 700 and "(1,000,005 characters)" in message and "\n" not in message
    with pytest.raises(ImageRefused, match=r"got \[0, 1, 2, .*… \(1,000 items\)$"):
        resolve_image_path("/", list(range(1000)), "record 7")
