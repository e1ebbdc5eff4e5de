"""LoclipImageProcessor and LoclipProcessor: one geometry for pixels and boxes, any input, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from transformers import LlavaProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from loclip.encoder import boxes as B
from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor


def to_255(pixel_values: torch.Tensor, ip: LoclipImageProcessor) -> torch.Tensor:
    """Undo normalisation: ``[..., 3, S, S]`` → pixel values in 0..255."""
    mean = torch.tensor(ip.image_mean)[:, None, None]
    std = torch.tensor(ip.image_std)[:, None, None]
    return (pixel_values * std + mean) * 255


def random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """``[n, 4]`` pixel xyxy boxes inside a ``width`` x ``height`` image."""
    xs = np.sort(rng.uniform(0, width, (n, 2)), axis=1)
    ys = np.sort(rng.uniform(0, height, (n, 2)), axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


@pytest.fixture
def processor(tokenizer) -> LoclipProcessor:
    return LoclipProcessor(LoclipImageProcessor(image_size=32), tokenizer)


# --- geometry --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width,height", [(100, 100), (37, 500), (500, 37), (1, 1), (4000, 3000)])
def test_box_round_trip_through_processor(tokenizer, width: int, height: int) -> None:
    processor = LoclipProcessor(LoclipImageProcessor(), tokenizer)  # default 224
    boxes = random_boxes(np.random.default_rng(width * height), 6, width, height)
    out = processor(images=Image.new("RGB", (width, height)), boxes=[boxes])
    assert out["original_sizes"].tolist() == [[height, width]]
    assert out["boxes"].shape == (1, 6, 4) and out["box_mask"].all()
    assert out["boxes"].min() >= 0 and out["boxes"].max() <= 1
    (back,) = processor.post_process_boxes(out["boxes"], out["original_sizes"])
    assert (back - torch.from_numpy(boxes).float()).abs().max() < 1e-2  # the mapping is exact, not just within 1 px


@pytest.mark.parametrize("seed", range(6))
def test_pixels_show_the_box_where_the_normalised_box_says(seed: int) -> None:
    rng = np.random.default_rng(seed)
    width, height = (int(v) for v in rng.integers(20, 400, size=2))
    x1, y1 = int(rng.integers(0, width * 2 // 3)), int(rng.integers(0, height * 2 // 3))
    x2, y2 = int(rng.integers(x1 + width // 3, width + 1)), int(rng.integers(y1 + height // 3, height + 1))
    if seed == 0:
        x1, y1, x2, y2 = 0, 0, width, height  # the box touching every border
    image = Image.new("RGB", (width, height))
    ImageDraw.Draw(image).rectangle([x1, y1, x2 - 1, y2 - 1], fill=(255, 255, 255))  # pixels x1..x2-1: [x1, x2)

    ip = LoclipImageProcessor(image_size=64)
    pv = ip(image)["pixel_values"][0]
    geometry = B.Letterbox(height, width, 64)
    rh, rw = geometry.resized_height, geometry.resized_width
    assert (pv[:, rh:, :] == 0).all() and (pv[:, :, rw:] == 0).all()  # padding is the mean colour: exactly 0
    assert (pv[:, :rh, :rw] != 0).all()  # the image itself (black or white) fills exactly the resized area

    bx1, by1, bx2, by2 = (B.pixel_to_model([[x1, y1, x2, y2]], (height, width), 64)[0] * 64).tolist()
    bright = to_255(pv, ip).mean(0) > 127.5
    cols = bright[int((by1 + by2) / 2)].nonzero().flatten()
    rows = bright[:, int((bx1 + bx2) / 2)].nonzero().flatten()
    assert abs(cols.min() - bx1) <= 1 and abs(cols.max() + 1 - bx2) <= 1
    assert abs(rows.min() - by1) <= 1 and abs(rows.max() + 1 - by2) <= 1


def test_exif_orientation_swaps_size_and_box_frame(processor: LoclipProcessor, tmp_path: Path) -> None:
    stored = Image.new("RGB", (40, 20))  # as stored: 40 wide, 20 tall
    ImageDraw.Draw(stored).rectangle([0, 0, 9, 9], fill=(255, 255, 255))  # white square at stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise: top-left goes to top-right
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=95)

    out = processor(images=str(tmp_path / "rotated.jpg"), boxes=[[[10, 0, 20, 10], [0, 0, 10, 10]]])
    assert out["original_sizes"].tolist() == [[40, 20]]  # (height, width) as displayed
    gray = to_255(out["pixel_values"][0], processor.image_processor).mean(0)
    (white, black) = (out["boxes"][0] * 32).round().long().tolist()
    assert gray[white[1] + 1 : white[3] - 1, white[0] + 1 : white[2] - 1].min() > 200
    assert gray[black[1] + 1 : black[3] - 1, black[0] + 1 : black[2] - 1].max() < 55


# --- inputs ----------------------------------------------------------------------------------------------


def palette_image(transparent: bool) -> Image.Image:
    image = Image.new("P", (6, 4), 0)
    image.putpalette([10, 20, 30] * 256)
    if transparent:
        image.info["transparency"] = 0
    return image


WHITE = (255, 255, 255)  # the background alpha is composited onto
MODES = {
    "1": (Image.new("1", (6, 4), 1), WHITE),
    "L": (Image.new("L", (6, 4), 128), (128, 128, 128)),
    "LA": (Image.new("LA", (6, 4), (128, 0)), WHITE),
    "P": (palette_image(False), (10, 20, 30)),
    "P+transparency": (palette_image(True), WHITE),
    "RGBA opaque": (Image.new("RGBA", (6, 4), (200, 10, 20, 255)), (200, 10, 20)),
    "RGBA clear": (Image.new("RGBA", (6, 4), (200, 10, 20, 0)), WHITE),
    "I;16": (Image.new("I;16", (6, 4), 257 * 100), (100, 100, 100)),
    "I 16-bit": (Image.new("I", (6, 4), 257 * 100), (100, 100, 100)),
    "I 8-bit": (Image.new("I", (6, 4), 100), (100, 100, 100)),
    "F 0..1": (Image.new("F", (6, 4), 0.5), (128, 128, 128)),
    "CMYK": (Image.new("CMYK", (6, 4), (255, 0, 0, 0)), (0, 255, 255)),
    "YCbCr": (Image.new("YCbCr", (6, 4), (128, 128, 128)), (128, 128, 128)),
}


@pytest.mark.parametrize("mode", MODES)
def test_every_pil_mode_gives_its_rgb_colour(mode: str) -> None:
    image, rgb = MODES[mode]
    ip = LoclipImageProcessor(image_size=8)
    out = ip(image, return_original_sizes=True)
    assert out["pixel_values"].shape == (1, 3, 8, 8) and out["pixel_values"].dtype == torch.float32
    assert out["original_sizes"].tolist() == [[4, 6]] and out["original_sizes"].dtype == torch.long
    colour = to_255(out["pixel_values"][0, :, :1, :1], ip).flatten()
    assert torch.allclose(colour, torch.tensor(rgb, dtype=torch.float32), atol=1.01), colour


def test_arrays_and_tensors_match_pil() -> None:
    ip = LoclipImageProcessor(image_size=16)
    hwc = np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    expected = ip(Image.fromarray(hwc))["pixel_values"]
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    for image in (hwc, chw, torch.from_numpy(hwc), chw.float() / 255, hwc.astype(np.int64)):
        assert torch.allclose(ip(image)["pixel_values"], expected, atol=1e-6)
    gray = hwc[..., 0]
    assert torch.allclose(ip(gray)["pixel_values"], ip(Image.fromarray(gray))["pixel_values"])
    batch = ip(np.stack([hwc, hwc]))  # a 4-D array is a batch
    assert batch["pixel_values"].shape == (2, 3, 16, 16) and torch.equal(batch["pixel_values"][1], expected[0])


def test_options_change_the_output() -> None:
    image = Image.new("RGB", (4, 2), (255, 0, 0))
    raw = LoclipImageProcessor(image_size=4, do_normalize=False)(image)["pixel_values"][0]
    assert raw[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert torch.allclose(raw[:, 3, 0], torch.tensor(LoclipImageProcessor().image_mean))  # padding: the mean colour
    custom = LoclipImageProcessor(image_size=4, image_mean=[0.5] * 3, image_std=[0.5] * 3)(image)["pixel_values"][0]
    assert custom[:, 0, 0].tolist() == [1.0, -1.0, -1.0]


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        ("no/such/file.png", ValueError, r"images\[0\].*existing image file.*'no/such/file.png'"),
        ({"pixels": 1}, TypeError, r"images\[0\] must be a PIL image.*got dict"),
        ([Image.new("RGB", (2, 2)), None], TypeError, r"images\[1\].*got NoneType"),
        (np.zeros(5, dtype=np.uint8), ValueError, r"images\[0\].*shape.*got \(5,\)"),
        (Image.new("RGB", (0, 0)), ValueError, r"images\[0\] is empty"),
        (np.zeros((0, 4, 3), dtype=np.uint8), ValueError, r"images\[0\] is empty"),
        (np.full((4, 4, 3), 2.0), ValueError, r"images\[0\].*\[0, 1\]"),
        (np.zeros((5, 5, 7), dtype=np.uint8), ValueError, r"images\[0\].*channels.*\(5, 5, 7\)"),
        ([], ValueError, "images is empty"),
    ],
)
def test_bad_images_raise_naming_the_input(images, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        LoclipImageProcessor(image_size=8)(images)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match=r"per-call options.*\['size'\]"):
        LoclipImageProcessor(image_size=8)(Image.new("RGB", (2, 2)), size={"height": 4, "width": 4})
    with pytest.raises(TypeError, match=r"unexpected arguments \['size'\]"):
        LoclipImageProcessor(size=32)
    with pytest.raises(ValueError, match="image_size must be a positive int, got 0"):
        LoclipImageProcessor(image_size=0)
    with pytest.raises(ValueError, match="image_mean must be 3 numbers"):
        LoclipImageProcessor(image_mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="resample must be a PIL resampling filter, got 'bicubic'"):
        LoclipImageProcessor(resample="bicubic")


# --- boxes -----------------------------------------------------------------------------------------------


def test_boxes_are_padded_with_a_mask(processor: LoclipProcessor) -> None:
    images = [Image.new("RGB", (64, 32)), Image.new("RGB", (16, 32))]
    out = processor(images=images, boxes=[[[0, 0, 64, 32], [16, 8, 32, 16]], torch.tensor([[4.0, 8.0, 12.0, 24.0]])])
    assert out["boxes"].shape == (2, 2, 4) and out["boxes"].dtype == torch.float32
    assert out["box_mask"].tolist() == [[True, True], [True, False]]
    assert out["boxes"][0].tolist() == [[0.0, 0.0, 1.0, 0.5], [0.25, 0.125, 0.5, 0.25]]
    assert out["boxes"][1].tolist() == [[0.125, 0.25, 0.375, 0.75], [0.0, 0.0, 0.0, 0.0]]
    back = processor.post_process_boxes(out["boxes"], out["original_sizes"], box_mask=out["box_mask"])
    assert [b.shape for b in back] == [(2, 4), (1, 4)] and back[1].tolist() == [[4.0, 8.0, 12.0, 24.0]]
    lists = processor.post_process_boxes([[[0.0, 0.0, 1.0, 0.5]], []], [(32, 64), (32, 16)])  # lists in, lists out
    assert lists[0].tolist() == [[0.0, 0.0, 64.0, 32.0]] and lists[1].shape == (0, 4)


def test_empty_box_lists(processor: LoclipProcessor) -> None:
    out = processor(images=[Image.new("RGB", (5, 5))] * 2, boxes=[[], np.zeros((0, 4))])
    assert out["boxes"].shape == (2, 0, 4) and out["box_mask"].shape == (2, 0)
    assert [b.shape for b in processor.post_process_boxes(out["boxes"], out["original_sizes"])] == [(0, 4)] * 2


def test_a_box_within_one_pixel_of_the_image_is_clipped_without_clip_boxes(processor: LoclipProcessor) -> None:
    """The one box rule (``boxes.check_pixel_box``): up to 1 px past an edge is clipped, as in the data loaders."""
    image = Image.new("RGB", (50, 20))
    out = processor(images=image, boxes=[[[-1, 0.5, 51, 21]]])
    assert torch.equal(out["boxes"][0], B.pixel_to_model([[0, 0.5, 50, 20]], (20, 50), 32))


def test_clip_boxes(processor: LoclipProcessor) -> None:
    image = Image.new("RGB", (50, 20))
    out = processor(images=image, boxes=[[[-5, 2, 60, 30]]], clip_boxes=True)
    assert torch.allclose(out["boxes"][0], B.pixel_to_model([[0, 2, 50, 20]], (20, 50), 32))
    with pytest.raises(ValueError, match=r"boxes\[0\]: box \[60.0, 0.0, 70.0, 10.0\] has zero area.*\(20, 50\)"):
        processor(images=image, boxes=[[[60, 0, 70, 10]]], clip_boxes=True)


@pytest.mark.parametrize(
    ("boxes", "error", "match"),
    [
        (
            [[], [[0, 0, 51.5, 10]]],
            ValueError,
            r"boxes\[1\]\[0\] = \[0.0, 0.0, 51.5, 10.0\] reaches more than 1 px "
            r"outside the 50x20 \(width x height\) image; pass clip_boxes=True",
        ),
        ([[], [[-1.5, 0, 5, 5]]], ValueError, r"boxes\[1\]\[0\].*outside the 50x20"),
        ([[[10, 0, 5, 5]], []], ValueError, r"boxes\[0\].*x2 < x1"),
        ([[0, 0, 5, 5], []], ValueError, r"boxes\[0\] must be a list of \[x1, y1, x2, y2\] boxes.*\(4,\)"),
        ([[[0, 0, 5]], []], ValueError, r"boxes\[0\] must have shape \[\.\.\., 4\]"),
        ([[["a", "b", "c", "d"]], []], TypeError, r"boxes\[0\] must be a tensor or nested sequence"),
        ([[[0, 0, 5, 5]]], ValueError, "boxes has 1 box lists but there are 2 images"),
        (torch.zeros(2, 4), ValueError, r"boxes given as one array must have shape \[B, R, 4\]"),
        ("0 0 5 5", TypeError, "boxes must be a list with one list of xyxy boxes per image, got str"),
    ],
)
def test_bad_boxes_raise(processor: LoclipProcessor, boxes, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        processor(images=[Image.new("RGB", (50, 20))] * 2, boxes=boxes)


def test_bad_processor_calls_raise(processor: LoclipProcessor, tokenizer) -> None:
    with pytest.raises(ValueError, match="needs images, text or both"):
        processor()
    with pytest.raises(ValueError, match="boxes were given without images"):
        processor(text="a", boxes=[[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match=r"original_sizes must be \[B, 2\]"):
        processor.post_process_boxes([[[0.0, 0.0, 1.0, 1.0]]], [5, 5])
    with pytest.raises(ValueError, match=r"box_mask must have shape \[B, R\]"):
        processor.post_process_boxes(torch.zeros(1, 2, 4), [(5, 5)], box_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="must be a LoclipImageProcessor"):
        LoclipProcessor(CLIPImageProcessorPil(), tokenizer)


# --- text, saving, transformers interop ------------------------------------------------------------------


def test_text_and_images_together(processor: LoclipProcessor) -> None:
    out = processor(images=Image.new("RGB", (9, 7)), text=["a red circle", "the blue square is left of"])
    assert out["input_ids"].shape == (2, 16) and out["attention_mask"][0].sum() == 5  # <bos> a red circle <eos>
    assert out["pixel_values"].shape == (1, 3, 32, 32)
    assert processor(text="a", padding=True)["input_ids"].shape == (1, 3)


def test_save_and_load_round_trip(processor: LoclipProcessor, tmp_path: Path) -> None:
    processor.image_processor.image_mean = [0.5, 0.25, 0.125]  # a non-default value must survive too
    processor.save_pretrained(tmp_path)
    loaded = LoclipProcessor.from_pretrained(tmp_path)
    assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8))
    kwargs = dict(images=[image], text=["a small red star"], boxes=[[[1, 2, 10, 20]]])
    expected, got = processor(**kwargs), loaded(**kwargs)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)

    ip_dir = tmp_path / "image_processor"
    processor.image_processor.save_pretrained(ip_dir)
    assert LoclipImageProcessor.from_pretrained(ip_dir).to_dict() == processor.image_processor.to_dict()
    assert LoclipImageProcessor.from_pretrained(ip_dir, image_size=48).image_size == 48


def test_works_as_llava_image_processor(tokenizer) -> None:
    llava = LlavaProcessor(
        image_processor=LoclipImageProcessor(image_size=32),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    out = llava(images=Image.new("RGB", (40, 30)), text="<image> what is in the image", return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 32, 32)
    assert (out["input_ids"] == llava.image_token_id).sum() == (32 // 8) ** 2  # + 1 CLS - 1 dropped by "default"
    assert "original_sizes" not in out  # generate() rejects keys the model does not take


def test_image_file_paths(tmp_path: Path) -> None:
    Image.new("RGBA", (3, 5), (0, 0, 255, 255)).save(tmp_path / "blue.png")
    out = LoclipImageProcessor(image_size=8)(
        [str(tmp_path / "blue.png"), tmp_path / "blue.png"], return_original_sizes=True
    )
    assert out["original_sizes"].tolist() == [[5, 3], [5, 3]]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"images\[0\]: not an image in an allowed format"):
        LoclipImageProcessor(image_size=8)(str(tmp_path / "bad.png"))
