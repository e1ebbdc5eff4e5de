"""How a value a user handed over appears in an error message: its ``repr``, cut short.

Every message that quotes user input goes through ``shown``, so a 300 MB value (a YAML alias bomb, a pasted
file) gives a one-line message, not a 300 MB one. ``shown`` never walks more of the value than it prints:
containers are rendered item by item up to the budget (a deeply nested or self-referencing value is safe).
"""

from __future__ import annotations

from typing import Any

LIMIT = 80  # characters of a value quoted in a message
PATH_LIMIT = 240  # characters of a file path quoted in a message: enough for the file's own name to show


def shown(value: Any, limit: int = LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, with what was left out said at the end
    (``'aaaa…' (10,000 characters)``, ``[1, 2, 3, …] (1,000 items)``)."""
    text = _bounded_repr(value, limit + 1, depth=0)
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 1)] + "…" + _size_note(value)


def shown_path(path: Any) -> str:
    """A file path a user named, as a message quotes it: ``shown`` with room for a long folder and the name."""
    return shown(str(path), PATH_LIMIT)


def _size_note(value: Any) -> str:
    if isinstance(value, (str, bytes, bytearray)):
        unit = "characters" if isinstance(value, str) else "bytes"
        return f" ({len(value):,} {unit})"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f" ({len(value):,} items)"
    return ""


def _bounded_repr(value: Any, budget: int, depth: int) -> str:
    """``repr(value)``, stopped once ``budget`` characters are produced (so the cost is bounded by the budget,
    not by the value)."""
    if depth > 20:
        return "…"
    if isinstance(value, str):
        return repr(value[:budget])[: budget + 2]
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:budget]))
    if isinstance(value, dict):
        items = ((f"{_bounded_repr(k, budget, depth + 1)}: ", v) for k, v in value.items())
        return _join(items, "{", "}", budget, depth)
    if isinstance(value, (list, tuple, set, frozenset)):
        opening, closing = {list: "[]", tuple: "()"}.get(type(value), "{}")
        return _join((("", v) for v in value), opening, closing, budget, depth)
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    return text[:budget]


def _join(items: Any, opening: str, closing: str, budget: int, depth: int) -> str:
    parts: list[str] = []
    used = 1
    for prefix, item in items:
        if used > budget:
            parts.append("…")
            break
        part = prefix + _bounded_repr(item, budget - used, depth + 1)
        parts.append(part)
        used += len(part) + 2
    trailing = "," if opening == "(" and len(parts) == 1 else ""  # (5,) is a tuple, (5) is not
    return opening + ", ".join(parts) + trailing + closing
