"""What the labeller reads before any model runs: an image folder's files (bounded like shard members) and each
sample's JSON (through the one JSON parser, so whatever does not parse is a counted skip, never a traceback)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from loclip.label.inputs import image_units
from loclip.label.pipeline import decode
from loclip.pretrain.data import RawSample
from loclip.shards.skips import SkipCounter


def png(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


def test_an_image_file_over_the_byte_limit_is_skipped_and_counted_unread(tmp_path: Path) -> None:
    small = png()
    (tmp_path / "a.png").write_bytes(small)
    (tmp_path / "big.png").write_bytes(small + b"\0" * 100)  # still a PNG (trailing bytes), but over the limit
    (tmp_path / "empty.png").write_bytes(b"")  # no image, but within the limit: decode counts it
    (unit,) = image_units(tmp_path, max_bytes=len(small) + 10)
    counter = SkipCounter()
    samples = unit.read(counter)
    assert [s.key for s in samples] == ["a", "empty"] and samples[0].files == {"png": small}
    assert counter.as_dict() == {"member/too_large": 1}
    decoded = SkipCounter()
    assert decode(samples[1], decoded) is None and decoded.as_dict() == {"sample/bad_image": 1}
    (unit,) = image_units(tmp_path)  # the default: the shard reader's member limit (64 MiB)
    assert len(unit.read(SkipCounter())) == 3


def test_a_sample_json_that_does_not_parse_is_counted_as_bad_json() -> None:
    """``[[[[…]]]]`` 10^5 deep used to raise RecursionError out of the run."""
    for data in [b"[" * 100_000 + b"]" * 100_000, b"{oops", b'{"caption": "\xff"}', b"[1, 2]"]:
        counter = SkipCounter()
        assert decode(RawSample("k", {"json": data, "png": png()}, "shard.tar"), counter) is None
        assert counter.as_dict() == {"sample/bad_json": 1}
    counter = SkipCounter()
    item = decode(RawSample("k", {"json": b'\xef\xbb\xbf{"caption": "a cat"}', "png": png()}, "shard.tar"), counter)
    assert item is not None and item.record == {"caption": "a cat"} and counter.total == 0
