"""Ten clients at once, five requests each: every request is answered, none fails."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client, handle_file

from loclip.demo.limits import load_image

CLIENTS, REQUESTS = 10, 5


def test_ten_concurrent_clients_get_every_answer(chat_server, image_file: Path) -> None:
    def session(k: int) -> list[dict]:
        client = Client(chat_server.url, verbose=False, download_files=False)
        out = []
        for i in range(REQUESTS):
            # each client asks with its own box; the answer must still be the one for these inputs
            box = [4 + k, 4 + i, 40 + k, 40 + i]
            result = client.predict(
                image=handle_file(image_file), boxes=[box], question="What is in <region>?", api_name="/ask"
            )
            out.append((box, result))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        sessions = list(pool.map(session, range(CLIENTS)))

    results = [r for s in sessions for r in s]
    assert len(results) == CLIENTS * REQUESTS
    image = load_image(image_file, chat_server.limits)
    for box, result in results:  # each answer is the one for its own inputs: nothing mixed up between clients
        expected = chat_server.backend.ask(image, "What is in <region>?", [box]).as_dict()
        assert result == {**expected, "history": [expected]}
        assert len(result["answer_boxes"]) == 1
