"""Signatures of ``forward`` overrides that pass their keyword arguments through to the parent's ``forward``.

transformers reads a model's ``forward`` signature to decide what it may pass (``generate`` checks for
``attention_mask``, ``position_ids``, ``logits_to_keep``, ``mm_encoder_outputs`` and rejects keyword
arguments ``forward`` does not name). An override that lists the parent's parameters again drifts when
upstream renames one (``past_key_values`` became ``cache`` in 5.24); one that takes ``**kwargs`` alone hides
them. ``extends(parent)`` gives the override the parent's parameters, read from the installed transformers,
followed by the override's own keyword-only ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def extends(parent: Callable, hide: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator: advertise ``parent``'s parameters plus the decorated function's own.

    ``hide``: parent parameters not to advertise (still passed through when a caller gives them), for
    features the override must not be offered, e.g. ``generate`` encoding images ahead when it sees
    ``mm_encoder_outputs``.

    The decorated function takes the parameters it shares with ``parent`` (``self``, ``input_ids``, ...)
    positionally in the parent's order, its own extra ones keyword-only, and hands the rest on through
    ``**kwargs``; its ``__signature__`` then lists the parent's parameters, its extras and ``**kwargs``.
    """

    def decorate(fn: F) -> F:
        own = inspect.signature(fn).parameters
        theirs = inspect.signature(parent).parameters
        shared = [p for p in theirs.values() if p.kind is not p.VAR_KEYWORD and p.name not in hide]
        names = {p.name for p in shared}
        leading = [p.name for p in own.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        if leading != [p.name for p in shared[: len(leading)]]:
            raise TypeError(
                f"{fn.__qualname__}: positional parameters {leading} must lead {parent.__qualname__}'s "
                f"({[p.name for p in shared]})"
            )
        extra = [
            p.replace(kind=p.KEYWORD_ONLY)
            for p in own.values()
            if p.name not in names and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        var = [p for p in own.values() if p.kind is p.VAR_KEYWORD]
        fn.__signature__ = inspect.Signature([*shared, *extra, *var])  # type: ignore[attr-defined]
        return fn

    return decorate
