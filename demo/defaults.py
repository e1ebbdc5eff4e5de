"""What the demo opens with: which model (when no ``--model`` is given) and which example image and text.

The example depends on the model's language, not its size: a model whose tokenizer holds the synthetic
world's vocabulary at the world tokenizer's own ids (every quickstart model, whatever its image size) gets a
synthetic scene, since it has never seen a photo nor words outside that world; any other model gets a real
photo from scikit-image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

QUICKSTART_CHAT = Path("runs/mllm_quickstart")
QUICKSTART_ENCODER = Path("runs/quickstart")
DISPLAY_SIDE = 256  # synthetic scenes are tiny; they are enlarged (nearest neighbour) to about this side


def default_model_path(root: str | os.PathLike = ".") -> Path:
    """The MLLM quickstart if it exists, else the encoder quickstart (both relative to ``root``).

    Raises ``FileNotFoundError`` naming the commands that make them when neither exists.
    """
    for candidate in (QUICKSTART_CHAT, QUICKSTART_ENCODER):
        path = Path(root) / candidate
        if (path / "config.json").is_file():
            return path
    raise FileNotFoundError(
        f"no --model given and neither quickstart model exists ({QUICKSTART_CHAT}/ for chat mode, "
        f"{QUICKSTART_ENCODER}/ for encoder mode). Make them with\n"
        f"  loclip-pretrain --output-dir {QUICKSTART_ENCODER}\n"
        f"  loclip-finetune --output-dir {QUICKSTART_CHAT}\n"
        "or pass --model PATH to a saved loclip encoder or MLLM."
    )


@dataclass(frozen=True)
class Example:
    """The image and text the UI starts with; ``boxes`` are pixel xyxy boxes of ``image``."""

    image: Image.Image
    boxes: list[list[float]]
    question: str
    labels: str
    phrase: str
    source: str


def speaks_synthetic_world(tokenizer: Any) -> bool:
    """True if ``tokenizer`` maps every token of the synthetic world's tokenizer to the same id."""
    from loclip.synth import build_tokenizer

    vocab = tokenizer.get_vocab()
    return all(vocab.get(token) == i for token, i in build_tokenizer().get_vocab().items())


def synthetic_example(image_size: int) -> Example:
    """A synthetic scene drawn at the model's own resolution (the first val scene with 3+ objects)."""
    from loclip.synth import SceneConfig, generate_scene
    from loclip.synth.config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

    config = SceneConfig(image_size=min(max(image_size, MIN_IMAGE_SIZE), MAX_IMAGE_SIZE))
    scene = next(s for s in (generate_scene("val", i, 0, config) for i in range(100)) if len(s.objects) >= 3)
    factor = max(1, DISPLAY_SIDE // scene.size)
    image = Image.fromarray(scene.image).resize((scene.size * factor,) * 2, Image.Resampling.NEAREST)
    first, second = scene.objects[0], scene.objects[1]
    return Example(
        image=image,
        boxes=[[float(v * factor) for v in first.box]],
        question="What is in <region>?",
        labels=", ".join(dict.fromkeys([*(o.phrase for o in scene.objects), "large white ring", "small green star"])),
        phrase=second.phrase,
        source=f"synthetic scene val/{scene.index} (seed 0), enlarged {factor}x",
    )


def photo_example() -> Example:
    """scikit-image's astronaut photo (bundled with the package, no download)."""
    from skimage import data

    return Example(
        image=Image.fromarray(data.astronaut()),
        boxes=[[160.0, 20.0, 300.0, 200.0]],  # the face
        question="What is in <region>?",
        labels="a face, a flag, a helmet, a rocket, a spacesuit",
        phrase="the flag",
        source="scikit-image astronaut photo",
    )


def default_example(tokenizer: Any, image_size: int) -> Example:
    """The example for a model: a synthetic scene for synthetic-world models, else a photo (module docstring)."""
    return synthetic_example(image_size) if speaks_synthetic_world(tokenizer) else photo_example()
