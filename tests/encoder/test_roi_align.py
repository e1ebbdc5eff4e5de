"""RoIAlign against an explicit per-sample bilinear loop (float64)."""

import math

import pytest
import torch

from loclip.encoder import roi_align


def _bilinear(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Reference rules of Mask R-CNN's RoIAlign for one point of a [C, H, W] map."""
    _, h, w = fmap.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(fmap.shape[0], dtype=fmap.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return hy * hx * fmap[:, y0, x0] + hy * lx * fmap[:, y0, x1] + ly * hx * fmap[:, y1, x0] + ly * lx * fmap[:, y1, x1]


def naive_roi_align(features, boxes, batch_index, out: int, scale: float, ratio: int) -> torch.Tensor:
    result = torch.zeros(len(boxes), features.shape[1], out, out, dtype=features.dtype)
    for k, (box, b) in enumerate(zip(boxes.tolist(), batch_index.tolist())):
        x1, y1, x2, y2 = (v * scale - 0.5 for v in box)
        bin_w, bin_h = max(x2 - x1, 0.0) / out, max(y2 - y1, 0.0) / out
        for py in range(out):
            for px in range(out):
                acc = torch.zeros(features.shape[1], dtype=features.dtype)
                for iy in range(ratio):
                    for ix in range(ratio):
                        y = y1 + py * bin_h + (iy + 0.5) * bin_h / ratio
                        x = x1 + px * bin_w + (ix + 0.5) * bin_w / ratio
                        acc += _bilinear(features[b], y, x)
                result[k, :, py, px] = acc / (ratio * ratio)
    return result


@pytest.mark.parametrize("out,ratio", [(1, 1), (2, 2), (3, 2)])
def test_matches_naive_reference_including_borders(out: int, ratio: int) -> None:
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 5, 7, 6, dtype=torch.float64, generator=g)  # H=7, W=6: non-square on purpose
    boxes = torch.tensor(
        [
            [0.0, 0.0, 6.0, 7.0],  # the whole map
            [0.0, 0.0, 0.4, 0.3],  # tiny, top-left corner
            [5.5, 6.5, 6.0, 7.0],  # bottom-right border
            [2.0, 3.0, 2.0, 3.0],  # zero size
            [1.3, 0.2, 4.7, 6.9],
            [-0.9, -0.9, 6.9, 7.9],  # samples beyond the border: clamped or zero per the reference rules
        ],
        dtype=torch.float64,
    )
    rand = torch.rand(10, 4, dtype=torch.float64, generator=g) * torch.tensor([6.0, 7.0, 6.0, 7.0], dtype=torch.float64)
    rand = torch.cat([torch.minimum(rand[:, :2], rand[:, 2:]), torch.maximum(rand[:, :2], rand[:, 2:])], dim=1)
    boxes = torch.cat([boxes, rand])
    batch_index = torch.randint(0, 3, (len(boxes),), generator=g)
    got = roi_align(feats, boxes, batch_index, out, 1.0, ratio)
    ref = naive_roi_align(feats, boxes, batch_index, out, 1.0, ratio)
    assert got.shape == (len(boxes), 5, out, out)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_spatial_scale_and_float32() -> None:
    feats = torch.randn(2, 4, 8, 8)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 1.0]])
    idx = torch.tensor([0, 1])
    got = roi_align(feats, boxes, idx, 2, spatial_scale=8.0, sampling_ratio=2)
    ref = naive_roi_align(feats.double(), boxes.double(), idx, 2, 8.0, 2)
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=0)


def test_gradients_flow_and_empty_and_bad_shapes() -> None:
    feats = torch.randn(1, 3, 4, 4, requires_grad=True)
    roi_align(feats, torch.tensor([[0.5, 0.5, 3.0, 3.0]]), torch.tensor([0]), 2).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert roi_align(feats, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 2).shape == (0, 3, 2, 2)
    with pytest.raises(ValueError, match="boxes must be"):
        roi_align(feats, torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="features must be"):
        roi_align(feats[0], torch.zeros(1, 4), torch.zeros(1, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="batch_index"):
        roi_align(feats, torch.zeros(2, 4), torch.zeros(3, dtype=torch.long), 2)
