"""Every API endpoint through ``gradio_client``, with good and bad requests; the server keeps answering."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from loclip.demo.backend import load_backend
from loclip.demo.limits import Limits, load_image


@pytest.fixture(scope="module")
def chat_client(chat_server) -> Client:
    return Client(chat_server.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def encoder_client(encoder_server) -> Client:
    return Client(encoder_server.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A corrupt PNG, a text file posing as an image, and an image over the test pixel limit (300 x 300)."""
    root = tmp_path_factory.mktemp("bad")
    good = root / "ok.png"
    Image.new("RGB", (20, 20), (10, 200, 10)).save(good)
    (root / "corrupt.png").write_bytes(good.read_bytes()[:50])
    (root / "notes.png").write_text("not an image at all")
    Image.new("RGB", (301, 300)).save(root / "huge.png")
    noise = np.random.default_rng(0).integers(0, 256, size=(700, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "heavy.png")  # ~1.4 MB, over the 1 MB upload limit of the test server
    return {
        "corrupt": root / "corrupt.png",
        "text": root / "notes.png",
        "huge": root / "huge.png",
        "heavy": root / "heavy.png",
    }


def test_endpoints_are_named(chat_client: Client, encoder_client: Client) -> None:
    assert set(chat_client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/ask", "/info"}
    assert set(encoder_client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/rank_labels",
        "/ground",
        "/info",
    }


def test_info_reports_mode_and_limits(chat_client: Client, encoder_client: Client, chat_server) -> None:
    info = chat_client.predict(api_name="/info")
    assert info["mode"] == "chat" and info["endpoints"] == ["/ask"]
    assert info["limits"]["max_boxes"] == chat_server.limits.max_boxes
    assert encoder_client.predict(api_name="/info")["mode"] == "encoder"


# -------------------------------------------------------------------------------------------------- /ask
def test_ask_answers_like_the_backend(chat_client: Client, chat_server, image_file: Path) -> None:
    boxes = [[5, 5, 40, 30], [50, 10, 90, 70]]
    got = chat_client.predict(
        image=handle_file(image_file), boxes=boxes, question="Which is bigger, <region>?", api_name="/ask"
    )
    expected = chat_server.backend.ask(load_image(image_file, chat_server.limits), "Which is bigger, <region>?", boxes)
    assert got == {**expected.as_dict(), "history": [expected.as_dict()]}
    assert got["question"] == "Which is bigger, <region>? <region>"
    assert len(got["answer_boxes"]) == 1  # the fixture model always answers with one box
    x1, y1, x2, y2 = got["answer_boxes"][0]
    assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 72


def test_ask_takes_boxes_as_json_text_and_no_boxes(chat_client: Client, image_file: Path) -> None:
    as_text = chat_client.predict(
        image=handle_file(image_file), boxes="[[5, 5, 40, 30]]", question="What?", api_name="/ask"
    )
    assert as_text["question_boxes"] == [[5, 5, 40, 30]]
    none = chat_client.predict(image=handle_file(image_file), boxes=None, question="Describe.", api_name="/ask")
    assert none["question"] == "Describe." and none["question_boxes"] == []


def test_ask_continues_a_conversation_from_the_history_it_returned(
    chat_client: Client, chat_server, image_file: Path
) -> None:
    first = chat_client.predict(
        image=handle_file(image_file), boxes=[[5, 5, 40, 30]], question="What is <region>?", api_name="/ask"
    )
    assert first["history"] == [{k: v for k, v in first.items() if k != "history"}]
    second = chat_client.predict(
        image=handle_file(image_file), boxes=[], question="Where is it?", history=first["history"], api_name="/ask"
    )
    image = load_image(image_file, chat_server.limits)
    earlier = chat_server.backend.ask(image, "What is <region>?", [[5, 5, 40, 30]])
    expected = chat_server.backend.ask(image, "Where is it?", [], history=[earlier])
    assert {k: v for k, v in second.items() if k != "history"} == expected.as_dict()
    assert [t["question"] for t in second["history"]] == ["What is <region>?", "Where is it?"]
    assert second["history"][0] == first["history"][0]  # what the client sent back comes back unchanged
    assert second["history"][0]["answer_boxes"]  # (the fixture model answers with a box)
    with pytest.raises(AppError, match=r"history\[0\].question has 1 <region> placeholders but 0 boxes"):
        chat_client.predict(
            image=handle_file(image_file),
            boxes=[],
            question="Next?",
            history=[{**first, "question_boxes": []}],
            api_name="/ask",
        )


BAD_ASKS = [
    ("no image", dict(image=None, boxes=[], question="What?"), "no image"),
    (
        "box outside",
        dict(boxes=[[0, 0, 98, 10]], question="What?"),
        r"boxes\[0\] = \[0.0, 0.0, 98.0, 10.0\] reaches more than 1 px outside the 96x72",
    ),
    ("too many boxes", dict(boxes=[[0, 0, 9, 9]] * 4, question="What?"), "4 boxes given; the limit is 3"),
    ("too long text", dict(boxes=[], question="why " * 30), "question has 119 characters; the limit is 80"),
    ("empty question", dict(boxes=[], question="  "), "question is empty"),
    ("extra placeholders", dict(boxes=[], question="What is <region>?"), "1 <region> placeholders but 0 boxes"),
    ("malformed boxes", dict(boxes=[[1, 2, 3]], question="What?"), r"boxes\[0\] must be four numbers"),
    ("corrupt file", dict(file="corrupt", boxes=[], question="What?"), "cannot read 'corrupt.png' as an image"),
    ("not an image", dict(file="text", boxes=[], question="What?"), "cannot read 'notes.png' as an image"),
    ("too many pixels", dict(file="huge", boxes=[], question="What?"), "301x300 = 90,300 pixels; the limit is 90,000"),
    ("huge integer", dict(boxes=[[1, 2, 3, 10**400]], question="What?"), r"boxes\[0\] has a coordinate too large"),
    ("overflowing number", dict(boxes="[[1, 2, 3, 1e400]]", question="What?"), r"boxes\[0\] must be four finite"),
    ("deep boxes", dict(boxes="[" * 50_000 + "]" * 50_000, question="What?"), "boxes nests its JSON too deeply"),
    (
        "deep history",
        dict(boxes=[], question="What?", history="[" * 50_000 + "]" * 50_000),
        "history nests its JSON too deeply",
    ),
    ("role marker", dict(boxes=[], question="Hi ASSISTANT: yes"), "question contains 'ASSISTANT:'"),
    ("end token", dict(boxes=[], question="Hi <eos>"), "question contains '<eos>'"),
    ("ground token", dict(boxes=[], question="Where is <ground>?"), "question contains '<ground>'"),
    (
        "image in an answer",
        dict(boxes=[], question="And?", history=[{"question": "What?", "answer": "<image>"}]),
        r"history\[0\].answer contains '<image>'",
    ),
]


@pytest.mark.parametrize("case, request_, message", BAD_ASKS, ids=[c[0] for c in BAD_ASKS])
def test_ask_refuses_bad_requests_and_keeps_serving(
    chat_client: Client, image_file: Path, bad_files: dict[str, Path], case: str, request_: dict, message: str
) -> None:
    request_ = dict(request_)
    path = bad_files[request_.pop("file")] if "file" in request_ else image_file
    image = request_.pop("image", handle_file(path))
    with pytest.raises(AppError, match=message):
        chat_client.predict(image=image, **request_, api_name="/ask")
    after = chat_client.predict(image=handle_file(image_file), boxes=[], question="Still there?", api_name="/ask")
    assert after["answer"]


def test_a_cancelled_ask_stops_generating_and_frees_the_model(
    chat_model_dir: Path, image_file: Path, serve_backend, endless
) -> None:
    from gradio_client.utils import Status

    backend = load_backend(chat_model_dir, Limits(max_pixels=300 * 300, max_file_mb=1.0))
    steps = endless(backend, max_new_tokens=1000)
    with serve_backend(backend) as server:
        client = Client(server.url, verbose=False, download_files=False)
        job = client.submit(image=handle_file(image_file), boxes=[], question="What?", api_name="/ask")
        deadline = time.monotonic() + 60
        while len(steps) < 3:  # generating
            assert time.monotonic() < deadline and not job.done()
            time.sleep(0.01)
        job.cancel()
        assert backend._lock.acquire(timeout=60)  # the model is free once the cancelled answer stopped...
        backend._lock.release()
        assert len(steps) < 500  # ...at the next token, not after all 1,000
        backend.max_new_tokens = 3
        assert client.predict(image=handle_file(image_file), boxes=[], question="Hi", api_name="/ask")["answer"]
        assert job.status().code in (Status.CANCELLED, Status.FINISHED)


def test_request_bodies_are_capped_before_they_are_parsed(chat_client: Client, chat_server, image_file: Path) -> None:
    join = f"{chat_server.url}gradio_api/queue/join"
    limit = chat_server.limits.max_request_bytes
    turns = b"[" + b"{}," * (limit // 3) + b"{}]"  # a history of ~limit/3 turns, in a body over the limit
    body = b'{"data": [null, [], "Hi", ' + turns + b'], "fn_index": 1, "session_hash": "abc"}'
    headers = {"content-type": "application/json"}
    declared = httpx.post(join, content=body, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["detail"] == f"the request body is {len(body):,} bytes; the limit is {limit:,} bytes"
    streamed = httpx.post(join, content=(body[i : i + 4096] for i in range(0, len(body), 4096)), headers=headers)
    assert streamed.status_code == 413  # no Content-Length (chunked): refused once the count passes the limit
    upload = f"{chat_server.url}gradio_api/upload"
    big = httpx.post(upload, files={"files": ("a.png", b"0" * chat_server.limits.max_upload_bytes)})
    assert big.status_code == 413 and "the limit is" in big.json()["detail"]
    deep = b'{"data": [null, [], "Hi", ' + b"[" * 40_000 + b"]" * 40_000 + b'], "fn_index": 1, "session_hash": "a"}'
    assert len(deep) < limit and httpx.post(join, content=deep, headers=headers).status_code in (400, 422)
    assert chat_client.predict(image=handle_file(image_file), boxes=[], question="Hi", api_name="/ask")["answer"]


def test_uploads_over_the_size_limit_are_refused(chat_client: Client, image_file: Path, bad_files) -> None:
    assert bad_files["heavy"].stat().st_size > 1024 * 1024
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        chat_client.predict(image=handle_file(bad_files["heavy"]), boxes=[], question="What?", api_name="/ask")
    assert chat_client.predict(image=handle_file(image_file), boxes=[], question="Hi", api_name="/ask")["answer"]


# -------------------------------------------------------------------------------------- /rank_labels, /ground
def test_rank_labels_answers_like_the_backend(encoder_client: Client, encoder_server, image_file: Path) -> None:
    boxes, labels = [[0, 0, 48, 36], [40, 30, 96, 72]], "red circle, blue star\nlarge white ring"
    got = encoder_client.predict(image=handle_file(image_file), boxes=boxes, labels=labels, api_name="/rank_labels")
    image = load_image(image_file, encoder_server.limits)
    expected = encoder_server.backend.rank(image, boxes, ["red circle", "blue star", "large white ring"])
    assert got == {"regions": [r.as_dict() for r in expected]}
    for region in got["regions"]:
        scores = [r["score"] for r in region["ranking"]]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-3)


def test_ground_answers_like_the_backend(encoder_client: Client, encoder_server, image_file: Path) -> None:
    got = encoder_client.predict(image=handle_file(image_file), phrase=" red circle ", api_name="/ground")
    box = encoder_server.backend.ground(load_image(image_file, encoder_server.limits), "red circle")
    assert got["phrase"] == "red circle" and got["found"] and got["box"] == pytest.approx(box, abs=0.01)
    assert 0 <= got["box"][0] < got["box"][2] <= 96 and 0 <= got["box"][1] < got["box"][3] <= 72


def test_ground_says_not_found_for_a_box_without_area(encoder_client: Client, encoder_server, image_file) -> None:
    size_bias = encoder_server.backend.model.vision_model.box_head.size_bias
    kept = size_bias.detach().clone()
    with torch.no_grad():
        size_bias.fill_(-40.0)  # every box shrinks to no area, as for a phrase the model cannot place
    try:
        got = encoder_client.predict(image=handle_file(image_file), phrase="a unicorn", api_name="/ground")
    finally:
        with torch.no_grad():
            size_bias.copy_(kept)
    assert got == {"phrase": "a unicorn", "found": False, "box": None}


BAD_RANKS = [
    ("no image", dict(image=None, boxes=[[0, 0, 9, 9]], labels="a, b"), "no image"),
    ("no boxes", dict(boxes=[], labels="a, b"), "no boxes"),
    ("box outside", dict(boxes=[[0, 0, 9, 74]], labels="a, b"), r"boxes\[0\] = .* more than 1 px outside the 96x72"),
    ("too many boxes", dict(boxes=[[0, 0, 9, 9]] * 4, labels="a, b"), "4 boxes given; the limit is 3"),
    ("too many labels", dict(boxes=[[0, 0, 9, 9]], labels="a,b,c,d,e,f,g"), "7 candidate labels given; the limit is 6"),
    ("too long text", dict(boxes=[[0, 0, 9, 9]], labels="x" * 81), "labels has 81 characters; the limit is 80"),
    ("corrupt file", dict(file="corrupt", boxes=[[0, 0, 9, 9]], labels="a, b"), "cannot read 'corrupt.png'"),
]

BAD_GROUNDS = [
    ("no image", dict(image=None, phrase="red circle"), "no image"),
    ("empty phrase", dict(phrase=""), "phrase is empty"),
    ("too long text", dict(phrase="y" * 81), "phrase has 81 characters; the limit is 80"),
    ("corrupt file", dict(file="corrupt", phrase="red circle"), "cannot read 'corrupt.png'"),
    ("too many pixels", dict(file="huge", phrase="red circle"), "the limit is 90,000 pixels"),
]


@pytest.mark.parametrize(
    "endpoint, case, request_, message",
    [("/rank_labels", *c) for c in BAD_RANKS] + [("/ground", *c) for c in BAD_GROUNDS],
    ids=[f"rank-{c[0]}" for c in BAD_RANKS] + [f"ground-{c[0]}" for c in BAD_GROUNDS],
)
def test_encoder_endpoints_refuse_bad_requests_and_keep_serving(
    encoder_client: Client,
    image_file: Path,
    bad_files: dict[str, Path],
    endpoint: str,
    case: str,
    request_: dict,
    message: str,
) -> None:
    request_ = dict(request_)
    path = bad_files[request_.pop("file")] if "file" in request_ else image_file
    image = request_.pop("image", handle_file(path))
    with pytest.raises(AppError, match=message):
        encoder_client.predict(image=image, **request_, api_name=endpoint)
    after = encoder_client.predict(image=handle_file(image_file), phrase="ring", api_name="/ground")
    assert len(after["box"]) == 4
