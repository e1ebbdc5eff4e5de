"""A cap on HTTP request bodies, applied before the app reads them (an ASGI middleware).

gradio parses a request's JSON before any of the demo's checks run, so a 58 MB body of a million history turns
costs over a gigabyte of memory before ``parse_history`` can refuse it. ``BodyLimit`` refuses a body over its
limit from its ``Content-Length`` header, and counts the bytes of a body sent without one (chunked) as the app
reads it, answering 413 as soon as the count passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised into the app from ``receive`` when a streamed body passes the limit."""


class BodyLimit:
    """ASGI middleware: refuse (413) an HTTP request whose body is over ``limit_for(path)`` bytes.

    Args:
        app: the ASGI app it wraps.
        limit_for: the byte limit of a request path (uploads may get more than JSON calls).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, f"Content-Length {declared[:40].decode('latin-1')!r} is not a byte count")
                return
            if int(declared) > limit:
                await _refuse(send, 413, _too_large(f"{int(declared):,} bytes", limit))
                return
        state = {"received": 0, "over": False, "answered": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not state["over"]:
                await send(message)
            elif not state["answered"]:  # the app answered the exception itself (a 400): answer 413 instead
                state["answered"] = True
                await _refuse(send, 413, _too_large(f"over {limit:,} bytes", limit))

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        if state["over"] and not state["answered"]:
            await _refuse(send, 413, _too_large(f"over {limit:,} bytes", limit))


def _too_large(size: str, limit: int) -> str:
    return f"the request body is {size}; the limit is {limit:,} bytes"


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
