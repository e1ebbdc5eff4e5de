"""What a scene becomes on disk: its shard JSON (the DESIGN.md schema) and its LLaVA conversation."""

from __future__ import annotations

from typing import Any

import torch

from loclip.encoder import boxes
from loclip.encoder.box_text import render_box_list

from .scene import Scene

IMAGE_TOKEN = "<image>"


def shard_record(scene: Scene) -> dict[str, Any]:
    """The scene's JSON in a shard: ``caption``, ``long_captions``, ``regions[{bbox, phrase}]``
    (bbox in pixel xyxy, x2/y2 exclusive), plus the world's own fields."""
    return {
        "scene_id": scene.key,
        "split": scene.split,
        "index": scene.index,
        "seed": scene.seed,
        "width": scene.size,
        "height": scene.size,
        "background": scene.background,
        "caption": scene.text.caption,
        "long_captions": [scene.text.long_caption],
        "regions": [{"bbox": list(o.box), "phrase": o.phrase} for o in scene.objects],
        "objects": [{"shape": o.shape, "colour": o.colour, "size": o.size} for o in scene.objects],
    }


def model_frame_boxes(scene: Scene) -> torch.Tensor:
    """The objects' boxes in the normalised model-input frame → float ``[N, 4]``.

    Scenes are square, so with ``image_size`` equal to their side the model frame is the
    normalised image frame.
    """
    px = torch.tensor([o.box for o in scene.objects], dtype=torch.float32).reshape(-1, 4)
    return boxes.pixel_to_model(px, (scene.size, scene.size), image_size=scene.size)


def conversation_record(scene: Scene, image: str) -> dict[str, Any]:
    """A LLaVA-style record: ``id``, ``image`` (path as given), ``conversations`` (human/gpt
    turns, ``<image>`` first), and ``boxes``: pixel xyxy for each ``<region>``, in order."""
    box_text = render_box_list(model_frame_boxes(scene))
    turns: list[dict[str, str]] = []
    region_boxes: list[list[int]] = []
    for i, turn in enumerate(scene.text.turns):
        question = f"{IMAGE_TOKEN}\n{turn.question}" if i == 0 else turn.question
        if turn.kind == "refer" and turn.target is not None:
            region_boxes.append(list(scene.objects[turn.target].box))
        if turn.answer is not None:
            answer = turn.answer
        else:  # a grounding turn: the answer is its target's box
            assert turn.target is not None
            answer = box_text[turn.target]
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {"id": scene.key, "image": image, "conversations": turns, "boxes": region_boxes}
