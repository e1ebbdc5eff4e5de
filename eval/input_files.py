"""Reading a text or JSON file a user named (``instances_json``, ``captions_json``, ``refs_json``, ``classnames``,
``seg_classes``): one ``ValueError`` naming the field and the file for whatever stops it being read (missing,
unreadable, not UTF-8, not JSON, or nested deeper than the parser recurses: ``[[[[…]]]]`` 10^5 deep would
raise ``RecursionError``). A leading UTF-8 byte-order mark, which Windows editors write, is read past.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from .data import check_file


def read_text(path: str | os.PathLike, field_name: str) -> str:
    """The UTF-8 text of the file ``path`` (a byte-order mark read past)."""
    try:
        return check_file(path, field_name).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{field_name}: {str(path)!r} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ValueError(f"{field_name}: {str(path)!r} cannot be read ({e.strerror or e})") from None


def read_json(path: str | os.PathLike, field_name: str,
              object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """The JSON value in the file ``path`` (``object_pairs_hook`` as in ``json.loads``)."""
    text = read_text(path, field_name)
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as e:
        raise ValueError(f"{field_name}: {str(path)!r} is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{field_name}: {str(path)!r} nests its JSON too deeply to read") from None
