"""What the demo opens with: which model (when no ``--model`` is given) and which example image and text.

The example depends on what the model learnt from, not its size: a model whose tokenizer holds the synthetic
world's vocabulary at the world tokenizer's own ids (every quickstart model, whatever its image size), or whose
run folder says it was finetuned on the synthetic world (a real LLM such as SmolLM2 on the world's
conversations), gets a synthetic scene, since it has never seen a photo; any other model gets a real photo from
scikit-image. ``loclip-demo --example synthetic|photo`` overrides the choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


def trained_on_synthetic_world(path: str | os.PathLike) -> bool:
    """True when ``path`` is a ``loclip-finetune`` run folder whose recipe (``recipe.yaml``) trained on the
    synthetic world (``data.synthetic_world``): a real LLM keeps its own tokenizer, so its words tell nothing."""
    import yaml

    recipe = Path(path) / "recipe.yaml"
    if not recipe.is_file():
        return False
    try:
        tree = yaml.safe_load(recipe.read_text()) or {}
    except yaml.YAMLError:
        return False
    return isinstance(tree, dict) and bool((tree.get("data") or {}).get("synthetic_world"))


ExampleKind = Literal["auto", "synthetic", "photo"]


def default_example(
    tokenizer: Any, image_size: int, model_path: str | os.PathLike | None = None, kind: ExampleKind = "auto"
) -> Example:
    """The example for a model. ``"auto"``: a synthetic scene for a model that speaks the synthetic world's
    vocabulary or whose run folder trained on that world, else a photo (module docstring)."""
    if kind not in ("auto", "synthetic", "photo"):
        raise ValueError(f"example must be 'auto', 'synthetic' or 'photo', got {kind!r}")
    if kind == "auto":
        synthetic = speaks_synthetic_world(tokenizer) or (
            model_path is not None and trained_on_synthetic_world(model_path)
        )
        kind = "synthetic" if synthetic else "photo"
    return synthetic_example(image_size) if kind == "synthetic" else photo_example()
