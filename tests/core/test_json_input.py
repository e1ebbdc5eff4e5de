"""The one reader of text and JSON a user hands over: UTF-8 with a byte-order mark read past, and one
``InputRefused`` line naming where the value came from for whatever stops it being read."""

from __future__ import annotations

from pathlib import Path

import pytest

from loclip.core.json_input import InputRefused, parse_json, read_json, read_json_lines, read_text

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (DEEP, "shard member nests its JSON too deeply to read"),
        (DEEP.encode(), "shard member nests its JSON too deeply to read"),
        (b'{"a": "\xff"}', r"shard member is not UTF-8 text \(byte 7\)"),
        ("{oops", "shard member is not valid JSON: Expecting property name"),
        (b"", "shard member is not valid JSON: Expecting value"),
    ],
)
def test_what_stops_json_parsing_is_one_line_naming_it(data: str | bytes, message: str) -> None:
    with pytest.raises(InputRefused, match=message) as error:
        parse_json(data, "shard member")
    assert "\n" not in str(error.value) and isinstance(error.value, ValueError)


def test_a_byte_order_mark_is_read_past_in_bytes_text_and_files(tmp_path: Path) -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": 1}', "x") == {"a": 1}
    assert parse_json("\ufeff[1, 2]", "x") == [1, 2]
    path = tmp_path / "bom.json"
    path.write_bytes('\ufeff{"é": "ü"}'.encode())
    assert read_json(path, "field") == {"é": "ü"}
    assert read_text(path, "field") == '{"é": "ü"}'


def test_a_file_is_named_by_its_field_and_path(tmp_path: Path) -> None:
    with pytest.raises(InputRefused, match=r"^classnames: no such file '.*nope\.json'$"):
        read_json(tmp_path / "nope.json", "classnames")
    with pytest.raises(InputRefused, match=r"^classnames: '.*folder' cannot be read|^classnames: no such file"):
        read_text(tmp_path, "classnames")  # a directory is no file
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    with pytest.raises(InputRefused, match=r"^data\.train_json: '.*deep\.json' nests its JSON too deeply to read$"):
        read_json(deep, "data.train_json")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputRefused, match=r"^templates: '.*latin\.txt' is not UTF-8 text \(byte 3\)$"):
        read_text(latin, "templates")


def test_object_pairs_hook_is_passed_through() -> None:
    assert parse_json('{"a": 1, "a": 2}', "x", object_pairs_hook=list) == [("a", 1), ("a", 2)]


def test_a_log_read_while_written_passes_over_torn_lines(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b'{"step": 1}\n[1, 2]\n{"step": 2, "tr\n\xff\xfe\n' + b"[" * 5000 + b"\n")
    assert read_json_lines(log) == [{"step": 1}, [1, 2]]
