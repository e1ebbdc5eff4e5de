"""``BodyLimit``: request bodies over the limit are refused (413) before the app parses them, whether the size is
declared (``Content-Length``) or only counted while the body streams in (chunked)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from loclip.demo.http_limits import BodyLimit

LIMIT = 100


def make_client(read: list[int]) -> TestClient:
    async def echo(request: Request) -> JSONResponse:
        try:
            body = await request.body()
        except Exception:  # an app that answers a failed read itself (FastAPI answers 400)
            return JSONResponse({"detail": "There was an error parsing the body"}, status_code=400)
        read.append(len(body))
        return JSONResponse({"bytes": len(body)})

    limits = {"/upload": 10 * LIMIT}
    app = Starlette(
        routes=[Route("/{path:path}", echo, methods=["POST"])],
        middleware=[Middleware(BodyLimit, limit_for=lambda path: limits.get(path, LIMIT))],
    )
    return TestClient(app)


def test_bodies_within_the_limit_reach_the_app() -> None:
    read: list[int] = []
    client = make_client(read)
    assert client.post("/join", content=b"x" * LIMIT).json() == {"bytes": LIMIT}
    assert client.post("/upload", content=b"x" * 5 * LIMIT).json() == {"bytes": 5 * LIMIT}  # its own limit
    assert read == [LIMIT, 5 * LIMIT]


def test_a_declared_size_over_the_limit_is_refused_unread() -> None:
    read: list[int] = []
    response = make_client(read).post("/join", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": f"the request body is {LIMIT + 1:,} bytes; the limit is {LIMIT:,} bytes"}
    assert not read


def test_a_streamed_body_is_refused_once_it_passes_the_limit() -> None:
    read: list[int] = []
    chunks = (b"x" * 30 for _ in range(10))  # no Content-Length: sent chunked
    response = make_client(read).post("/join", content=chunks)
    assert response.status_code == 413 and "the limit is 100 bytes" in response.json()["detail"]
    assert not read  # the app never got the body, and its own 400 was replaced by the 413


def test_a_content_length_that_is_no_number_is_refused() -> None:
    response = make_client([]).post("/join", content=b"x", headers={"content-length": "lots"})
    assert response.status_code == 400 and "'lots' is not a byte count" in response.json()["detail"]
