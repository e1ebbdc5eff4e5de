"""The shard format: deterministic atomic writes, reads that group members into samples, key splitting, and a
reader whose memory is bounded by its limits and that reports every member it leaves out."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loclip.shards.read import MAX_HEADER_BYTES, iter_samples, open_source, split_name
from loclip.shards.skips import SkipCounter
from loclip.shards.streams import STREAM_ERRORS
from loclip.shards.write import ShardWriter, json_bytes, remove_partial

SAMPLES = [
    ("a", {"png": b"\x89PNG1", "json": json_bytes({"caption": "é"})}),
    ("dir/b", {"seg.png": b"mask", "json": b"{}"}),
]


def write(path: Path) -> None:
    with ShardWriter(path) as shard:
        for key, files in SAMPLES:
            shard.add(key, files)
        shard.commit()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> io.BytesIO:
    """A tar (``mode`` "w" or "w:gz") of ``(name, data)`` files and ready-made headers (links, devices, …)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    buf.seek(0)
    return buf


def read(stream: io.BytesIO, **kwargs) -> tuple[list, SkipCounter]:
    counter = SkipCounter()
    return list(iter_samples(stream, counter.add, **kwargs)), counter


def test_round_trip_keeps_samples_in_order_and_the_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    write(tmp_path / "one.tar")
    write(tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with open_source(str(tmp_path / "one.tar")) as stream:
        samples, counter = read(stream)
    assert samples == SAMPLES and counter.total == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tar", "two.tar"]  # no temporary file left


def test_a_failed_write_leaves_nothing_under_the_real_name(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path / "x.tar") as shard:
            shard.add("a", {"json": b"{}"})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".x.tar.tmp-123").write_bytes(b"left by a killed run")
    assert [p.name for p in remove_partial(tmp_path)] == [".x.tar.tmp-123"] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.png", ("a", "png")),
        ("d/e/k.SEG.PNG", ("d/e/k", "seg.png")),
        ("x.y/z.json", ("x.y/z", "json")),
        ("noext", None),
        (".hidden", None),
        ("dir/", None),
    ],
)
def test_split_name_follows_webdataset(name: str, expected) -> None:
    assert split_name(name) == expected


def test_members_without_an_extension_are_reported_and_skipped() -> None:
    reported: list[tuple[str, str]] = []
    stream = tar_bytes([("k.json", b"x"), ("README", b"x"), ("k.png", b"x")])
    assert list(iter_samples(stream, lambda reason, detail: reported.append((reason, detail)))) == [
        ("k", {"json": b"x", "png": b"x"})
    ]
    assert reported == [("member/bad_name", "'README'")]


def header(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_links_devices_and_fifos_are_counted_never_followed() -> None:
    """A symbolic link to /etc/passwd, a hard link to a member, a character device and a FIFO: none is read as
    a sample file, each is counted; a directory entry carries no data and is passed over."""
    stream = tar_bytes(
        [
            header("d", tarfile.DIRTYPE),
            ("d/a.json", b"{}"),
            header("d/a.png", tarfile.SYMTYPE, "/etc/passwd"),
            header("d/a.txt", tarfile.LNKTYPE, "d/a.json"),
            header("d/b.png", tarfile.CHRTYPE),
            header("d/b.jpg", tarfile.FIFOTYPE),
            ("d/b.json", b"[]"),
        ]
    )
    samples, counter = read(stream)
    assert samples == [("d/a", {"json": b"{}"}), ("d/b", {"json": b"[]"})]
    assert counter.as_dict() == {"member/not_a_file": 4}


def test_a_member_over_the_byte_limit_is_skipped_from_its_header_and_the_stream_goes_on() -> None:
    stream = tar_bytes([("a.json", b"1" * 100), ("a.png", b"2" * 101), ("b.png", b"3" * 100)])
    samples, counter = read(stream, max_member_bytes=100)
    assert samples == [("a", {"json": b"1" * 100}), ("b", {"png": b"3" * 100})]  # exactly at the limit: read
    assert counter.as_dict() == {"member/too_large": 1}


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_compressed_shards_read_like_plain_ones_and_a_cut_one_fails(mode: str) -> None:
    members = [("a.json", b"{}"), ("a.png", bytes(range(256)) * 40), ("b.json", b"[]")]
    data = tar_bytes(members, mode).getvalue()
    assert read(io.BytesIO(data))[0] == [("a", {"json": b"{}", "png": members[1][1]}), ("b", {"json": b"[]"})]
    with pytest.raises(STREAM_ERRORS):
        list(iter_samples(io.BytesIO(data[: len(data) // 2]), SkipCounter().add))


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as they are read (the test never holds them)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_a_gzip_shard_holding_a_huge_member_is_read_in_bounded_memory() -> None:
    """A gzip shard of ~30 KB whose one member is 32 MiB of zeros (a 1.6 MB shard can hold 1.5 GiB): the member
    is skipped from its header and streamed past, never held (it used to be read whole before anything else)."""
    big = tarfile.TarInfo("bomb.png")
    big.size = 32 * 2**20
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(big, io.BufferedReader(Zeros(big.size)))
        info = tarfile.TarInfo("after.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    assert len(buf.getvalue()) < 100_000
    buf.seek(0)
    tracemalloc.start()
    try:
        samples, counter = read(buf, max_member_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples == [("after", {"json": b"{}"})] and counter.as_dict() == {"member/too_large": 1}
    assert peak < 4 * 2**20


def test_an_extended_header_over_its_limit_fails_the_shard_before_it_is_read() -> None:
    """tarfile reads a pax header whole, at the size its own header claims: one over MAX_HEADER_BYTES is a
    damaged shard (``ReadError``); the samples before it are whole and kept."""
    huge = tarfile.TarInfo("b.json")
    huge.pax_headers = {"comment": "x" * (MAX_HEADER_BYTES + 1)}
    stream = tar_bytes([("a.json", b"{}"), huge])
    got: list = []
    with pytest.raises(tarfile.ReadError, match="extended tar header .* over the limit"):
        got.extend(iter_samples(stream, SkipCounter().add, keep_partial=True))
    assert got == [("a", {"json": b"{}"})]
    stream.seek(0)
    with pytest.raises(tarfile.ReadError):
        got = list(iter_samples(stream, SkipCounter().add))  # without keep_partial the pending sample is dropped


def test_repeated_names_and_keys_are_counted_and_the_first_wins() -> None:
    stream = tar_bytes(
        [
            ("a.json", b"first"),
            ("a.png", b"p"),
            ("a.json", b"second"),  # the same member name twice in a sample
            ("b.json", b"b"),
            ("a.json", b"again"),
            ("a.png", b"again"),  # a key that comes back later
        ]
    )
    samples, counter = read(stream)
    assert samples == [("a", {"json": b"first", "png": b"p"}), ("b", {"json": b"b"})]
    assert counter.as_dict() == {"member/duplicate": 1, "sample/duplicate_key": 1}


def test_a_truncated_stream_keeps_the_pending_sample_only_when_asked() -> None:
    data = tar_bytes([("a.json", b"{}"), ("a.png", b"x" * 3000), ("b.json", b"{}")]).getvalue()
    cut = data[: 512 + 512 + 512 + 1000]  # inside a.png's data
    for keep, expected in ((True, [("a", {"json": b"{}"})]), (False, [])):
        got: list = []
        with pytest.raises(tarfile.ReadError):
            got.extend(iter_samples(io.BytesIO(cut), SkipCounter().add, keep_partial=keep))
        assert got == expected


names = st.tuples(st.sampled_from("abc"), st.sampled_from(["json", "png", "seg.png"]))


@given(st.lists(names, max_size=12))
def test_every_member_is_read_once_or_reported(members: list[tuple[str, str]]) -> None:
    """Whatever the member order: keys come out once each; a name's data is its first member's; every member
    left out is reported (its name repeated in its sample, or its sample's key already used)."""
    stream = tar_bytes([(f"{k}.{e}", f"{i}".encode()) for i, (k, e) in enumerate(members)])
    samples, counter = read(stream)
    keys = [k for k, _ in samples]
    assert len(keys) == len(set(keys))
    first = {}
    for i, name in enumerate(members):
        first.setdefault(name, str(i).encode())
    for key, files in samples:
        assert all(first[(key, ext)] == data for ext, data in files.items())
    # a run of members sharing a key whose key an earlier run had is left out whole (and reported once)
    starts = [i for i in range(len(members)) if i == 0 or members[i - 1][0] != members[i][0]]
    runs = [members[a:b] for a, b in zip(starts, starts[1:] + [len(members)])]
    repeated = [run for i, run in enumerate(runs) if run[0][0] in {r[0][0] for r in runs[:i]}]
    counts = counter.as_dict()
    assert counts.get("sample/duplicate_key", 0) == len(repeated)
    kept = sum(len(files) for _, files in samples)
    assert kept + counts.get("member/duplicate", 0) + sum(map(len, repeated)) == len(members)


def test_a_counter_can_say_the_first_skip_of_each_reason() -> None:
    """One counter for the data stream and eval's readers: eval says each reason's first skip on stderr."""
    said: list[tuple[str, str]] = []
    counter = SkipCounter(on_first=lambda reason, detail: said.append((reason, detail)))
    for reason, detail in [("a", "first a"), ("a", "second a"), ("b", "first b"), ("a", "third a")]:
        counter.add(reason, detail)
    assert said == [("a", "first a"), ("b", "first b")] and counter.as_dict() == {"a": 3, "b": 1}
    assert counter.pop_delta() == {"a": 3, "b": 1}
