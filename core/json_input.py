"""Text and JSON a user hands over: a file they name (``read_text``, ``read_json``), or JSON bytes or text from a
shard member, a record line or a request (``parse_json``).

One rule for all of them: text is UTF-8 (a leading byte-order mark, which Windows editors write, is read past),
and whatever stops the value being read is one ``InputRefused`` (a ``ValueError``) of one line that names where
the value came from: a missing or unreadable file, bytes that are not UTF-8, text that is not JSON, or JSON
nested deeper than the parser recurses (``json.loads`` of ``[[[[…]]]]`` 10^5 deep raises ``RecursionError``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .messages import shown_path

PairsHook = Callable[[list[tuple[str, Any]]], Any]


class InputRefused(ValueError):
    """A file or value a user handed over that loclip cannot read; the message names it, in one line. A command
    ends with that line and exit status 2 (also when a trainer meets it after the command has started)."""


def check_file(path: str | os.PathLike, field_name: str) -> Path:
    """``path`` as a ``Path``, or ``InputRefused`` naming the field when it is not an existing file."""
    p = Path(path)
    if not p.is_file():
        raise InputRefused(f"{field_name}: no such file {shown_path(path)}")
    return p


def decode_text(data: bytes | str, where: str) -> str:
    """UTF-8 ``data`` as text, a byte-order mark read past (text is returned as it is, less a leading mark)."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputRefused(f"{where} is not UTF-8 text (byte {e.start})") from None


def parse_json(data: bytes | str, where: str, object_pairs_hook: PairsHook | None = None) -> Any:
    """The JSON value of ``data`` (UTF-8 bytes or text; ``object_pairs_hook`` as in ``json.loads``); ``where``
    names it in the message of the ``InputRefused`` raised for anything that stops it parsing."""
    text = decode_text(data, where)
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as e:
        raise InputRefused(f"{where} is not valid JSON: {e}") from None
    except RecursionError:  # the decoder recurses once per level of nesting
        raise InputRefused(f"{where} nests its JSON too deeply to read") from None


def where_file(path: str | os.PathLike, field_name: str) -> str:
    """How a file a user named is called in messages: ``field: 'path'`` (the path cut short)."""
    return f"{field_name}: {shown_path(path)}"


def read_text(path: str | os.PathLike, field_name: str) -> str:
    """The UTF-8 text of the file ``path`` that the field ``field_name`` names (a byte-order mark read past)."""
    file = check_file(path, field_name)
    try:
        data = file.read_bytes()
    except OSError as e:
        raise InputRefused(f"{where_file(path, field_name)} cannot be read ({e.strerror or e})") from None
    return decode_text(data, where_file(path, field_name))


def read_json(path: str | os.PathLike, field_name: str, object_pairs_hook: PairsHook | None = None) -> Any:
    """The JSON value in the file ``path`` that the field ``field_name`` names (``object_pairs_hook`` as in
    ``json.loads``)."""
    return parse_json(read_text(path, field_name), where_file(path, field_name), object_pairs_hook)


def read_json_lines(path: str | os.PathLike) -> list[Any]:
    """The values of a JSONL log that loclip appends to (``metrics.jsonl``): each whole line, parsed; a line that
    is not a whole JSON value (a write cut short by a kill, bytes that are not UTF-8) is passed over, as a reader
    of a log that may be written while it reads must."""
    values = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            values.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            continue
    return values
