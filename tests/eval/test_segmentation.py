"""Zero-shot segmentation: score upsampling through the letterbox, class prompts, and whole evaluations on a colour
model whose patch and text embeddings are known, so the exact confusion matrix is known too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_helpers import PURE, paint

from loclip.eval import Dataset, SegmentedImage, evaluate_segmentation
from loclip.eval.embed import class_scores, class_text_weights, prompt_groups
from loclip.eval.segmentation import upsample_scores

LEFT, RIGHT, PAD = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 0.5])


def _wide_scores() -> torch.Tensor:
    """Scores ``[8, 8, 3]`` of a 24 x 48 (height x width) image at 64 px: it fills patch rows 0-3 (32 model
    pixels); class 0 wins on the left half, class 1 on the right, and the padding rows favour class 2."""
    scores = PAD.repeat(8, 8, 1)
    scores[:4, :4], scores[:4, 4:] = LEFT, RIGHT
    return scores


def test_upsample_cuts_the_letterbox_and_maps_back_to_the_original_pixels() -> None:
    # 48 wide → 64 (x 4/3); 24 high → 32, then 32 rows of padding
    out = upsample_scores(_wide_scores(), (24, 48), image_size=64)
    assert out.shape == (3, 24, 48)
    expected = torch.zeros(24, 48, dtype=torch.long)
    expected[:, 24:] = 1  # the class boundary sits at model x = 32, original x = 24; no padding class anywhere
    assert torch.equal(out.argmax(0), expected)
    # without the crop, the padding would fill the lower half of the image with class 2
    squeezed = F.interpolate(_wide_scores().permute(2, 0, 1)[None], size=(24, 48), mode="bilinear")[0]
    assert (squeezed.argmax(0) == 2).any()


def test_upsample_tall_image_pads_on_the_right() -> None:
    # the same picture turned a quarter: 48 high x 24 wide, padding columns on the right
    out = upsample_scores(_wide_scores().transpose(0, 1), (48, 24), image_size=64)
    expected = torch.zeros(48, 24, dtype=torch.long)
    expected[24:] = 1
    assert out.shape == (3, 48, 24) and torch.equal(out.argmax(0), expected)


def test_upsample_square_and_larger_than_the_input() -> None:
    grid = torch.arange(2 * 2 * 1, dtype=torch.float32).reshape(2, 2, 1)  # one class, values 0 1 / 2 3
    out = upsample_scores(grid, (128, 128), image_size=64)
    assert out.shape == (1, 128, 128)
    # bilinear with half-pixel centres: the corners keep the corner patches' values, the centre is their mean
    assert out[0, 0, 0] == 0 and out[0, -1, -1] == 3 and out[0, 0, -1] == 1 and out[0, -1, 0] == 2
    assert out[0, 63:65, 63:65].mean().item() == pytest.approx(1.5)


def test_prompt_groups_average_within_and_take_the_best_group(colour_model) -> None:
    model, processor = colour_model
    assert prompt_groups(["red", "blue"], ["a {}.", "the {} one"]) == [
        [["a red.", "the red one"]],
        [["a blue.", "the blue one"]],
    ]
    with pytest.raises(ValueError, match="class_prompts has 1 entries for 2 classes"):
        prompt_groups(["red", "blue"], ["{}"], [[["red"]]])
    # class 0: one group averaging red and blue; class 1: two groups, green or white
    groups = [[["a red thing", "a blue thing"]], [["green"], ["white"]]]
    weights, owner = class_text_weights(model, processor, groups)
    r, g, b, w = (F.normalize(torch.tensor(c, dtype=torch.float32) / 127.5 - 1, dim=0) for c in PURE.values())
    torch.testing.assert_close(weights, torch.stack([F.normalize(r + b, dim=0), g, w]))
    assert owner.tolist() == [0, 1, 1]
    scores = class_scores(torch.stack([g, w, r]), weights, owner, 2)  # [3 features, 2 classes]
    # green and white each match one of class 1's groups exactly (cosine 1), red does not
    torch.testing.assert_close(scores[:, 1], torch.tensor([1.0, 1.0, -1 / 3]))
    torch.testing.assert_close(scores[:, 0], torch.stack([F.normalize(r + b, dim=0) @ v for v in (g, w, r)]))
    with pytest.raises(ValueError, match="non-empty group"):
        class_text_weights(model, processor, [[["red"]], [[]]])


# Two images the colour model segments exactly (boundaries on patch edges; 64 px, so no resizing):
#   A, 64 wide x 32 high (padding below): red x < 32, blue 32 <= x < 48, green x >= 48
#   B, 32 wide x 64 high (padding right): green y < 32, red below
# The model says: red → red, blue → blue, green → background (its "green" group). The truth of A disagrees in one
# block: its lower right green block (16 x 16 = 256 px) is "red"; an 8 x 8 corner of A is unlabelled (255).
#   truth background: A 256 + B 1024 = 1280, all predicted background
#   truth red:        A 1024 - 64 + B 1024 = 1984 right, A 256 predicted background
#   truth blue:       A 512, all right
# IoU: background 1280 / (1280 + 256), red 1984 / (1984 + 256), blue 1; pixel acc (1280 + 1984 + 512) / 4032.
CLASSES = ("background", "red", "blue")
PROMPTS = (
    (("The background is green.",), ("The background is white.",)),
    (("A red shape.", "a red one"),),
    (("A blue shape.",),),
)


def _toy_segmentation() -> Dataset[SegmentedImage]:
    a = paint(
        32,
        64,
        [
            (slice(None), slice(0, 32), "red"),
            (slice(None), slice(32, 48), "blue"),
            (slice(None), slice(48, 64), "green"),
        ],
    )
    mask_a = np.ones((32, 64), dtype=np.int64)
    mask_a[:, 32:48] = 2
    mask_a[:16, 48:] = 0
    mask_a[:8, :8] = 255
    b = paint(64, 32, [(slice(0, 32), slice(None), "green"), (slice(32, 64), slice(None), "red")])
    mask_b = np.zeros((64, 32), dtype=np.int64)
    mask_b[32:] = 1
    items = [SegmentedImage(a, mask_a), SegmentedImage(b, mask_b)]
    return Dataset("toy", items, CLASSES, class_prompts=PROMPTS, ignore_index=255)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_evaluate_segmentation_exact(colour_model, batch_size: int) -> None:
    model, processor = colour_model
    result = evaluate_segmentation(model, processor, _toy_segmentation(), batch_size=batch_size)
    iou = {"background": 1280 / 1536, "red": 1984 / 2240, "blue": 1.0}
    assert result.metrics == pytest.approx(
        {"mIoU": sum(iou.values()) / 3, "pixel_acc": 3776 / 4032, "mean_acc": (1 + 1984 / 2240 + 1) / 3}
    )
    assert result.info["class_iou"] == pytest.approx(iou)
    assert result.info["num_images"] == 2 and result.info["num_classes"] == 3
    assert (result.task, result.dataset) == ("segmentation", "toy")


def test_evaluate_segmentation_with_templates_and_errors(colour_model) -> None:
    model, processor = colour_model
    # no class prompts: template x name. "green" is now a class of its own, so image B is right everywhere
    image = paint(64, 32, [(slice(0, 32), slice(None), "green"), (slice(32, 64), slice(None), "red")])
    mask = np.zeros((64, 32), dtype=np.int64)
    mask[32:] = 1
    data = Dataset("templates", [SegmentedImage(image, mask)], ("green", "red", "blue"), ignore_index=255)
    result = evaluate_segmentation(model, processor, data, templates=("a {} shape.", "{}"))
    assert result.metrics == pytest.approx({"mIoU": 1.0, "pixel_acc": 1.0, "mean_acc": 1.0})
    assert result.info["class_iou"] == {"green": 1.0, "red": 1.0}  # blue: never seen nor predicted, no IoU
    wrong_size = Dataset("bad", [SegmentedImage(image, mask[:32])], ("green", "red"))
    with pytest.raises(ValueError, match="mask array is 32x32 pixels but its image is 32x64 pixels"):
        evaluate_segmentation(model, processor, wrong_size)
    unknown = Dataset("bad", [SegmentedImage(image, mask + 3)], ("green", "red"))
    with pytest.raises(ValueError, match="target label 3 is not one of the 2 classes"):
        evaluate_segmentation(model, processor, unknown)
    with pytest.raises(ValueError, match="dataset 'empty' has no images"):
        evaluate_segmentation(model, processor, Dataset("empty", [], ("green",)))


def test_evaluate_segmentation_on_the_tiny_model(model_and_processor) -> None:
    """The real tiny LoclipModel: the figures are fractions and the counts add up."""
    model, processor = model_and_processor
    result = evaluate_segmentation(model, processor, _toy_segmentation(), batch_size=2)
    assert set(result.metrics) == {"mIoU", "pixel_acc", "mean_acc"}
    assert all(0 <= v <= 1 for v in result.metrics.values() if not math.isnan(v))
    assert set(result.info["class_iou"]) <= set(CLASSES)
