"""Image-folder reader for zero-shot classification: ``root/<class folder>/<image files>``.

Classes are the sub-folders in sorted order; a class's name (what the text prompts say) is its folder
name with ``_`` as spaces, or the value given for it in a ``classnames`` JSON object ``{folder: name}``.
"""

from __future__ import annotations

import os
from itertools import zip_longest

from loclip.core.json_input import read_json
from loclip.core.messages import shown

from .data import Dataset, LabelledImage, check_dir

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def read_classnames(path: str | os.PathLike) -> dict[str, str]:
    """A JSON object mapping class folder → class name, checked (``ValueError`` naming the file and the entry)."""
    names = read_json(path, "classnames")
    if not isinstance(names, dict):
        raise ValueError(
            f"classnames: {str(path)!r} must be a JSON object {{folder: non-empty name}}, got {type(names).__name__}"
        )
    for folder, name in names.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"classnames: {str(path)!r}: the name of {shown(folder)} must be a non-empty string, got {shown(name)}"
            )
    return names


def read_image_folder(
    root: str | os.PathLike, classnames: dict[str, str] | None = None, max_images: int | None = None
) -> Dataset[LabelledImage]:
    """Labelled images from class sub-folders (module docstring); ``max_images`` keeps the first N, taken
    round-robin over the classes."""
    base = check_dir(root, "zeroshot_dir")
    folders = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not folders:
        raise ValueError(f"zeroshot_dir: {str(root)!r} has no class sub-folders")
    if classnames is not None:
        unknown = sorted(set(classnames) - set(folders))
        if unknown:
            raise ValueError(f"classnames: folders {unknown} are not in zeroshot_dir {str(root)!r} (it has {folders})")
    names = tuple((classnames or {}).get(f, f.replace("_", " ")) for f in folders)
    per_class = [
        [LabelledImage(p, label) for p in sorted((base / folder).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        for label, folder in enumerate(folders)
    ]
    # round-robin over classes, so that the first N images (max_samples) cover the classes evenly
    items = [item for row in zip_longest(*per_class) for item in row if item is not None]
    return Dataset(f"folder:{base.name}", items, names).head(max_images)
