"""LoclipModel / LoclipVisionModel: API, region-embedding invariances, save/load, from_clip, errors."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

from loclip.encoder import LoclipConfig, LoclipModel, LoclipVisionConfig, LoclipVisionModel, tiny_config
from loclip.encoder.compat import enable_activation_checkpointing, is_activation_checkpointing
from loclip.encoder.modeling import found_boxes

S = 64  # tiny image size


@pytest.fixture(params=["clip", "siglip"])
def model(request) -> LoclipModel:
    return LoclipModel(tiny_config(trunk=request.param)).eval()


def _pixels(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, S, S, generator=torch.Generator().manual_seed(seed))


def _ids(b: int = 2, length: int = 9) -> torch.Tensor:
    ids = torch.randint(4, 60, (b, length), generator=torch.Generator().manual_seed(1))
    ids[:, 0], ids[:, -1] = 2, 3  # bos ... eos
    return ids


def _boxes() -> torch.Tensor:
    return torch.tensor(
        [
            [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0], [0.6, 0.2, 0.9, 0.4]],
            [[0.2, 0.3, 0.4, 0.9], [0.5, 0.5, 0.7, 0.95], [0.0, 0.0, 0.0, 0.0]],
        ]
    )


def test_shapes_and_api(model: LoclipModel) -> None:
    px, ids, d = _pixels(), _ids(), model.config.projection_dim
    g = model.config.vision_config.grid_size
    assert model.get_image_features(px).shape == (2, d)
    assert model.get_text_features(ids, torch.ones_like(ids)).shape == (2, d)
    assert model.get_patch_features(px).shape == (2, g, g, d)
    assert model.get_region_features(px, _boxes()).shape == (2, 3, d)
    assert model.get_region_features(px, _boxes(), method="roialign").shape == (2, 3, d)
    boxes = model.ground(px, ids)
    assert boxes.shape == (2, 4)
    assert (boxes[:, 2:] >= boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 1
    out = model(input_ids=ids, pixel_values=px, boxes=_boxes(), return_loss=True)
    assert out.logits_per_image.shape == (2, 2) and out.region_embeds.shape == (2, 3, d)
    assert torch.isfinite(out.loss)


def test_image_path_does_not_run_the_prompter(model: LoclipModel) -> None:
    calls = []
    model.vision_model.prompter.register_forward_hook(lambda *a: calls.append(1))
    model.get_image_features(_pixels())
    model(input_ids=_ids(), pixel_values=_pixels())
    assert calls == []
    model.get_region_features(_pixels(), _boxes())
    assert calls == [1]


def test_region_embedding_independent_of_other_boxes_padding_and_batch(model: LoclipModel) -> None:
    px, boxes = _pixels(3), torch.rand(3, 5, 4)
    boxes = torch.cat(
        [torch.minimum(boxes[..., :2], boxes[..., 2:]), torch.maximum(boxes[..., :2], boxes[..., 2:])], -1
    )
    with torch.no_grad():
        full = model.get_region_features(px, boxes)
        alone = model.get_region_features(px[1:2], boxes[1:2, 3:4])  # one box, one image
        mask = torch.ones(3, 7, dtype=torch.bool)
        mask[:, 5:] = False
        padded = torch.cat([boxes, torch.rand(3, 2, 4) * 5], dim=1)  # garbage in padded slots is ignored
        with_pad = model.get_region_features(px, padded, mask)
        shuffled = model.get_region_features(px[[2, 1, 0]], boxes[[2, 1, 0]][:, [4, 3, 2, 1, 0]])
    torch.testing.assert_close(alone[0, 0], full[1, 3], atol=1e-5, rtol=0)
    torch.testing.assert_close(with_pad[:, :5], full, atol=1e-5, rtol=0)
    assert with_pad[:, 5:].abs().max() == 0
    torch.testing.assert_close(shuffled[1, 1], full[1, 3], atol=1e-5, rtol=0)
    # different boxes give different embeddings
    dists = torch.cdist(full.reshape(-1, full.shape[-1]), full.reshape(-1, full.shape[-1]))
    assert (dists + torch.eye(15) * 1e3).min() > 1e-3


def test_gradients_reach_trunk_and_prompter(model: LoclipModel) -> None:
    model.train()
    emb = model.get_region_features(_pixels(), _boxes())
    emb.pow(2).sum().backward()
    trunk_grad = model.vision_model.trunk.embeddings.patch_embedding.weight.grad
    assert trunk_grad is not None and trunk_grad.abs().sum() > 0
    for name in ("q_proj", "k_proj", "out_proj"):
        g = getattr(model.vision_model.prompter, name).weight.grad
        assert g is not None and g.abs().sum() > 0, name
    assert model.vision_model.prompter.point_encoding.proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    model.ground(_pixels(), _ids()).sum().backward()
    assert model.vision_model.box_head.out.weight.grad.abs().sum() > 0  # the dense head (default)
    assert model.text_model.embeddings.token_embedding.weight.grad.abs().sum() > 0


def test_empty_box_list_returns_empty(model: LoclipModel) -> None:
    for method in ("prompter", "roialign"):
        out = model.get_region_features(_pixels(), torch.zeros(2, 0, 4), method=method)
        assert out.shape == (2, 0, model.config.projection_dim)


@pytest.mark.parametrize(
    "boxes,match",
    [
        (torch.tensor([[[0.5, 0.1, 0.2, 0.4]]]).expand(2, 1, 4), "x2 < x1"),
        (torch.tensor([[[0.1, 0.1, 1.5, 0.4]]]).expand(2, 1, 4), r"\[0, 1\]"),
        (torch.tensor([[[-0.2, 0.1, 0.5, 0.4]]]).expand(2, 1, 4), r"\[0, 1\]"),
        (torch.rand(2, 4), r"\[B=2, R, 4\]"),
        (torch.rand(3, 1, 4), r"\[B=2, R, 4\]"),
        (torch.rand(2, 1, 5), r"\[B=2, R, 4\]"),
        (torch.tensor([[[0, 0, 1, 1]]]).expand(2, 1, 4), "floating point"),
        (torch.tensor([[[float("nan"), 0.0, 1.0, 1.0]]]).expand(2, 1, 4), "NaN"),
        ([[0.1, 0.1, 0.2, 0.2]], "torch.Tensor"),
    ],
)
def test_bad_boxes_are_rejected(boxes, match) -> None:
    model = LoclipModel(tiny_config()).eval()
    with pytest.raises((ValueError, TypeError), match=match):
        model.get_region_features(_pixels(), boxes)


def test_bad_pixels_and_text_are_rejected() -> None:
    model = LoclipModel(tiny_config()).eval()
    with pytest.raises(ValueError, match=r"pixel_values must be \[B, C, 64, 64\]"):
        model.get_image_features(torch.randn(2, 3, 32, 32))
    with pytest.raises(TypeError, match="floating point"):
        model.get_image_features(torch.zeros(2, 3, S, S, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.get_image_features([[1.0]])
    with pytest.raises(ValueError, match="input_ids"):
        model.get_text_features(torch.randn(2, 5))
    with pytest.raises(ValueError, match="box_mask"):
        model.get_region_features(_pixels(), _boxes(), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="method"):
        model.get_region_features(_pixels(), _boxes(), method="mean")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="projection_dim"):
        tiny = tiny_config()
        LoclipConfig(vision_config=tiny.vision_config, text_config=tiny.text_config, projection_dim=16)
    with pytest.raises(ValueError, match="trunk_config.model_type"):
        LoclipVisionConfig(trunk_config={"model_type": "vit"})
    with pytest.raises(ValueError, match="grounding_head.*'boxes'"):
        LoclipVisionConfig(grounding_head="boxes")


@pytest.mark.parametrize(
    "trunk, prompter_heads, message",
    [
        ({"patch_size": 1000}, None, "trunk_config.patch_size = 1000: larger than trunk_config.image_size = 64"),
        ({"hidden_size": 66, "num_attention_heads": 3}, None, "trunk_config.hidden_size = 66: must be divisible by 4"),
        ({}, 3, "prompter_num_heads = 3: must divide trunk_config.hidden_size = 64"),
        ({}, -4, "prompter_num_heads = -4: must be >= 1"),
    ],
)
def test_config_refuses_a_trunk_shape_that_cannot_be_built(
    trunk: dict, prompter_heads: int | None, message: str
) -> None:
    """A patch larger than the image used to fail at the first forward (a convolution larger than its input)."""
    vision = tiny_config().vision_config.trunk_config.to_dict() | trunk
    with pytest.raises(ValueError) as error:
        LoclipVisionConfig(trunk_config=vision, projection_dim=32, prompter_num_heads=prompter_heads)
    assert str(error.value).startswith(message)


def test_the_shape_rule_names_the_numbers_as_its_caller_does() -> None:
    from loclip.encoder.configuration import check_trunk_shape

    names = {"width": "--w", "heads": "--h", "patch_size": "--p", "image_size": "--i", "prompter_heads": "--ph"}
    with pytest.raises(ValueError, match=r"^--w = 64: must be divisible by --h = 128 \(attention heads\)$"):
        check_trunk_shape(64, 128, 8, 64, None, names)
    check_trunk_shape(64, 4, 64, 64, 8, names)  # one patch covering the image is a valid (if coarse) grid


def test_dense_grounding_answers_with_the_best_cells_box(model: LoclipModel) -> None:
    px, ids = _pixels(), _ids()
    vision = model.vision_model
    enc = vision.encode(px)
    out = vision.grounding(enc, model.get_text_features(ids)[:, None])
    n = vision.config.grid_size**2
    assert out.cell_logits.shape == (2, 1, n) and out.cell_boxes.shape == (2, 1, n, 4)
    for b in range(2):
        best = out.cell_logits[b, 0].argmax()
        assert torch.equal(out.raw_boxes[b, 0], out.cell_boxes[b, 0, best])  # the loss sees it whole
        assert torch.equal(out.boxes[b, 0], out.cell_boxes[b, 0, best].clamp(0, 1))  # the answer inside the image
    assert torch.equal(model.ground(px, ids), out.boxes[:, 0])


def test_a_box_without_area_is_not_found(model: LoclipModel) -> None:
    px, ids = _pixels(), _ids()
    boxes, found = model.ground(px, ids, return_found=True)
    assert torch.equal(boxes, model.ground(px, ids)) and found.tolist() == [True, True]
    with torch.no_grad():
        model.vision_model.box_head.size_bias.fill_(-40.0)  # what a head draws for a phrase it cannot place
    boxes, found = model.ground(px, ids, return_found=True)
    assert found.tolist() == [False, False] and boxes.shape == (2, 4)
    # the rule: some area at the resolution of box text (0-999 integers)
    assert found_boxes(
        torch.tensor([[0.1, 0.1, 0.1004, 0.5], [0.1, 0.1, 0.5, 0.1], [0.1, 0.1, 0.102, 0.102], [0.0, 0.0, 1.0, 1.0]])
    ).tolist() == [False, False, True, True]


def test_dense_head_boxes_start_centred_on_their_cells() -> None:
    vision = LoclipVisionModel(tiny_config().vision_config).eval()
    torch.nn.init.zeros_(vision.box_head.out.weight)
    torch.nn.init.zeros_(vision.box_head.out.bias)
    torch.nn.init.constant_(vision.box_head.size_bias, -8.0)  # tiny boxes: no clamping at the image border
    enc = vision.encode(_pixels())
    out = vision.grounding(enc, torch.randn(2, 3, vision.config.text_embed_dim))
    g = vision.config.grid_size
    centres = (out.cell_boxes[..., :2] + out.cell_boxes[..., 2:]) / 2  # [2, 3, N, 2]
    cells = torch.stack(torch.meshgrid((torch.arange(g) + 0.5) / g, (torch.arange(g) + 0.5) / g, indexing="xy"), -1)
    torch.testing.assert_close(centres, cells.reshape(1, 1, g * g, 2).expand_as(centres), atol=1e-6, rtol=0)


def test_pooled_grounding_head_is_selectable(tmp_path: Path) -> None:
    config = tiny_config()
    config.vision_config.grounding_head = "pooled"
    model = LoclipModel(config).eval()
    out = model.vision_model.grounding(model.vision_model.encode(_pixels()), torch.randn(2, 1, 32))
    assert out.cell_logits is None and out.boxes.shape == (2, 1, 4)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.vision_config.grounding_head == "pooled"
    torch.testing.assert_close(loaded.ground(_pixels(), _ids()), model.ground(_pixels(), _ids()))


def test_save_load_in_fresh_process(tmp_path: Path, model: LoclipModel) -> None:
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_type"] == "loclip"
    inputs = {"pixel_values": _pixels(), "input_ids": _ids(), "boxes": _boxes()}
    save_file(inputs, tmp_path / "inputs.safetensors")
    with torch.no_grad():
        expected = {
            "image": model.get_image_features(inputs["pixel_values"]),
            "text": model.get_text_features(inputs["input_ids"]),
            "region": model.get_region_features(inputs["pixel_values"], inputs["boxes"]),
            "ground": model.ground(inputs["pixel_values"], inputs["input_ids"]),
        }
    script = textwrap.dedent(
        f"""
        import torch, loclip.encoder
        from safetensors.torch import load_file, save_file
        from transformers import AutoModel
        m = AutoModel.from_pretrained({str(tmp_path / "model")!r}).eval()
        assert type(m).__name__ == "LoclipModel", type(m)
        x = load_file({str(tmp_path / "inputs.safetensors")!r})
        with torch.no_grad():
            out = {{"image": m.get_image_features(x["pixel_values"]), "text": m.get_text_features(x["input_ids"]),
                   "region": m.get_region_features(x["pixel_values"], x["boxes"]),
                   "ground": m.ground(x["pixel_values"], x["input_ids"])}}
        save_file(out, {str(tmp_path / "out.safetensors")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    got = load_file(tmp_path / "out.safetensors")
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, atol=0, rtol=0, msg=key)


def test_vision_half_loads_from_full_checkpoint(tmp_path: Path, model: LoclipModel) -> None:
    model.save_pretrained(tmp_path)
    vision = LoclipVisionModel.from_pretrained(tmp_path).eval()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LoclipConfig)
    px = _pixels()
    with torch.no_grad():
        torch.testing.assert_close(vision.get_image_features(px), model.get_image_features(px), atol=0, rtol=0)
        torch.testing.assert_close(
            vision.get_region_features(px, _boxes()), model.get_region_features(px, _boxes()), atol=0, rtol=0
        )
        # forward is the trunk's, with hidden states for MLLM feature selection
        out = vision(px, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.vision_config.num_hidden_layers + 1


def _tiny_clip(tmp_path: Path, kind: str) -> Path:
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    if kind == "clip":
        cfg = CLIPConfig(
            text_config=dict(vocab_size=99, max_position_embeddings=16, eos_token_id=3, **common),
            vision_config=dict(image_size=S, patch_size=16, **common),
            projection_dim=24,
        )
        src = CLIPModel(cfg)
    else:
        cfg = SiglipConfig(
            text_config=dict(vocab_size=99, max_position_embeddings=16, **common),
            vision_config=dict(image_size=S, patch_size=16, **common),
        )
        src = SiglipModel(cfg)
    src.save_pretrained(tmp_path / kind)
    return tmp_path / kind


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_from_clip_matches_source_features(tmp_path: Path, kind: str) -> None:
    path = _tiny_clip(tmp_path, kind)
    src = AutoModel.from_pretrained(path).eval()
    model = LoclipModel.from_clip(path).eval()
    px, ids = _pixels(), _ids(length=12)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    with torch.no_grad():
        ref_img = src.get_image_features(pixel_values=px).pooler_output
        ref_txt = src.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        got_img = model.get_image_features(px)
        got_txt = model.get_text_features(ids, mask)
    assert (got_img - ref_img).abs().max() <= 1e-5
    assert (got_txt - ref_txt).abs().max() <= 1e-5
    assert model.logit_scale.item() == pytest.approx(src.logit_scale.item())
    # the new modules work on top and the result round-trips through save_pretrained
    model.save_pretrained(tmp_path / "loclip")
    again = AutoModel.from_pretrained(tmp_path / "loclip").eval()
    with torch.no_grad():
        torch.testing.assert_close(again.get_region_features(px, _boxes()), model.get_region_features(px, _boxes()))


def test_from_clip_rejects_other_checkpoints(tmp_path: Path) -> None:
    LoclipModel(tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="from_clip needs a checkpoint of type"):
        LoclipModel.from_clip(tmp_path)


def test_gradient_checkpointing_gives_same_gradients() -> None:
    torch.manual_seed(0)
    model = LoclipModel(tiny_config()).train()
    px, ids = _pixels(), _ids()

    def grads() -> torch.Tensor:
        model.zero_grad()
        out = model(input_ids=ids, pixel_values=px, boxes=_boxes(), return_loss=True)
        (out.loss + out.region_embeds.sum()).backward()
        return model.vision_model.trunk.embeddings.patch_embedding.weight.grad.clone()

    plain = grads()
    enable_activation_checkpointing(model)
    assert is_activation_checkpointing(model.vision_model.trunk) and is_activation_checkpointing(model.text_model)
    torch.testing.assert_close(grads(), plain, atol=1e-6, rtol=1e-5)


def test_encoder_imports_without_optional_dependencies() -> None:
    # Whether or not the extras are installed here, importing and using the encoder must not import them.
    script = textwrap.dedent(
        """
        import sys
        import loclip.encoder
        from loclip.encoder import LoclipModel, tiny_config
        LoclipModel(tiny_config())
        optional = ("deepspeed", "gradio", "peft", "bitsandbytes", "gradio_image_annotation", "webdataset")
        print(sorted(m for m in sys.modules if m.split(".")[0] in optional))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_patch_coverage_matches_pixel_counting() -> None:
    from loclip.encoder.boxes import patch_coverage

    grid, px = (3, 4), 60  # 3 rows x 4 columns of cells on a 60 x 60 raster (cells of 20 x 15 px)
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.55, 0.5], [0.3, 0.3, 0.3, 0.9]]])
    got = patch_coverage(boxes, grid)[0]  # [R, 12]
    ys, xs = torch.meshgrid((torch.arange(px) + 0.5) / px, (torch.arange(px) + 0.5) / px, indexing="ij")
    for r, (x1, y1, x2, y2) in enumerate(boxes[0].tolist()):
        inside = ((xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)).float()
        cells = inside.reshape(3, px // 3, 4, px // 4).mean(dim=(1, 3)).flatten()
        torch.testing.assert_close(got[r], cells, atol=1 / 15, rtol=0)  # one pixel row/column of a cell
    assert got[0].min() > 1 - 1e-6 and got[2].max() == 0  # whole image; a zero-width box covers nothing


def test_box_prior_focuses_attention_on_the_box() -> None:
    # With the prior, a box over one image region must embed that region's content: swapping the
    # content outside the box leaves the embedding nearly unchanged, swapping it inside does not.
    model = LoclipModel(tiny_config()).eval()
    px = _pixels(1)
    box = torch.tensor([[[0.0, 0.0, 0.5, 0.5]]])
    other = px.clone()
    other[..., 32:, :] = torch.randn(1, 3, 32, 64)  # change the bottom half (outside the box)
    inside = px.clone()
    inside[..., :32, :32] = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        base = model.get_region_features(px, box)
        d_out = (model.get_region_features(other, box) - base).norm()
        d_in = (model.get_region_features(inside, box) - base).norm()
    assert d_in > 2 * d_out
