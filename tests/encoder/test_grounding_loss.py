"""CLOC grounding loss and region weighting against hand-written loops."""

from __future__ import annotations

import pytest
import torch

from loclip.encoder.grounding_loss import dense_grounding_loss, grounding_loss


def ref_giou(p: list[float], t: list[float]) -> float:
    """GIoU of two xyxy boxes, by hand."""
    iw = max(0.0, min(p[2], t[2]) - max(p[0], t[0]))
    ih = max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
    inter = iw * ih
    union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    hull = (max(p[2], t[2]) - min(p[0], t[0])) * (max(p[3], t[3]) - min(p[1], t[1]))
    return inter / union - (hull - union) / hull


def random_boxes(*shape: int) -> torch.Tensor:
    corners = torch.rand(*shape, 2, 2, dtype=torch.float64)
    return torch.cat([corners.amin(-2), corners.amax(-2)], -1)


MASK = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 0]], dtype=torch.bool)


def test_l2_and_l1_giou_match_loops_over_valid_boxes() -> None:
    pred, target = random_boxes(3, 3), random_boxes(3, 3)
    pred[0, 1] = torch.nan  # padding may hold anything
    valid = MASK.nonzero().tolist()
    l2 = sum(sum((pred[b, m, c] - target[b, m, c]).item() ** 2 for c in range(4)) for b, m in valid) / len(valid)
    l1 = sum(sum(abs((pred[b, m, c] - target[b, m, c]).item()) for c in range(4)) for b, m in valid) / len(valid)
    giou = sum(1 - ref_giou(pred[b, m].tolist(), target[b, m].tolist()) for b, m in valid) / len(valid)
    assert grounding_loss(pred, target, MASK)["ground_l2"].item() == pytest.approx(l2, rel=1e-12)
    terms = grounding_loss(pred, target, MASK, kind="l1_giou", giou_weight=2.0)
    assert set(terms) == {"ground_l1", "ground_giou"}
    assert terms["ground_l1"].item() == pytest.approx(l1, rel=1e-12)
    assert terms["ground_giou"].item() == pytest.approx(2.0 * giou, rel=1e-12)


@pytest.mark.parametrize("kind", ["l2", "l1_giou"])
def test_gradients_reach_valid_predictions_only(kind: str) -> None:
    pred = random_boxes(3, 3).requires_grad_()
    loss = sum(grounding_loss(pred, random_boxes(3, 3), MASK, kind=kind).values())
    (g,) = torch.autograd.grad(loss, [pred])
    assert g[MASK].abs().sum(-1).gt(0).all() and g[~MASK].abs().sum() == 0


def test_no_valid_box_is_zero_with_a_graph() -> None:
    pred = random_boxes(2, 2).requires_grad_()
    terms = grounding_loss(pred, random_boxes(2, 2), torch.zeros(2, 2, dtype=torch.bool), kind="l1_giou")
    sum(terms.values()).backward()
    assert all(v == 0 for v in terms.values()) and pred.grad.abs().sum() == 0


def test_grounding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind"):
        grounding_loss(random_boxes(1, 1), random_boxes(1, 1), torch.ones(1, 1), kind="smooth_l1")
    with pytest.raises(ValueError, match="target_boxes"):
        grounding_loss(random_boxes(1, 2), random_boxes(1, 1), torch.ones(1, 2))


def ref_coverage(box: list[float], grid: tuple[int, int]) -> list[float]:
    """Share of each cell (row-major) inside ``box``, by looping over cells."""
    h, w = grid
    out = []
    for row in range(h):
        for col in range(w):
            ix = max(0.0, min(box[2], (col + 1) / w) - max(box[0], col / w))
            iy = max(0.0, min(box[3], (row + 1) / h) - max(box[1], row / h))
            out.append(ix * iy * h * w)
    return out


@pytest.mark.parametrize("kind", ["l2", "l1_giou"])
def test_dense_grounding_matches_a_loop_over_boxes_and_cells(kind: str) -> None:
    grid = (2, 3)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 3, 6, generator=g, dtype=torch.float64)
    cells = random_boxes(3, 3, 6)
    target = random_boxes(3, 3)
    target[2, 1] = torch.tensor([0.5, 0.2, 0.5, 0.2], dtype=torch.float64)  # zero area: its centre's cell
    logits[0, 1] = torch.nan  # padding may hold anything
    valid = MASK.nonzero().tolist()
    cell_ce = l2 = l1 = giou = 0.0
    for b, m in valid:
        t = target[b, m].tolist()
        cover = ref_coverage(t, grid)
        if sum(cover) == 0:
            cover = [1.0 if i == 1 else 0.0 for i in range(6)]  # centre (0.5, 0.2): row 0, column 1
        q = [c / sum(cover) for c in cover]
        logz = torch.logsumexp(logits[b, m], 0).item()
        for i in range(6):
            p = cells[b, m, i].tolist()
            cell_ce -= q[i] * (logits[b, m, i].item() - logz)
            l2 += q[i] * sum((p[c] - t[c]) ** 2 for c in range(4))
            l1 += q[i] * sum(abs(p[c] - t[c]) for c in range(4))
            giou += q[i] * (1 - ref_giou(p, t))
    n = len(valid)
    terms = dense_grounding_loss(logits, cells, target, MASK, grid, kind=kind, giou_weight=2.0)
    assert terms["ground_cell"].item() == pytest.approx(cell_ce / n, rel=1e-12)
    if kind == "l2":
        assert set(terms) == {"ground_cell", "ground_l2"}
        assert terms["ground_l2"].item() == pytest.approx(l2 / n, rel=1e-12)
    else:
        assert set(terms) == {"ground_cell", "ground_l1", "ground_giou"}
        assert terms["ground_l1"].item() == pytest.approx(l1 / n, rel=1e-12)
        assert terms["ground_giou"].item() == pytest.approx(2.0 * giou / n, rel=1e-12)


def test_dense_grounding_rejects_a_grid_that_does_not_match() -> None:
    with pytest.raises(ValueError, match="grid"):
        dense_grounding_loss(torch.zeros(1, 1, 6), random_boxes(1, 1, 6), random_boxes(1, 1), torch.ones(1, 1), (2, 2))
    with pytest.raises(ValueError, match="cell_boxes"):
        dense_grounding_loss(torch.zeros(1, 1, 4), random_boxes(1, 1, 3), random_boxes(1, 1), torch.ones(1, 1), (2, 2))


def test_a_box_past_the_edge_is_clamped_for_output_but_the_loss_sees_it_whole() -> None:
    """A predicted box whose x1 would be -0.15 is shown clamped at 0, but the loss compares the whole box: the
    error then moves the centre right and leaves the width alone. On the clamped box x1 would look right and
    the x2 error alone would widen the box, pushing x1 further out (the issue's failure)."""
    from loclip.encoder import LoclipModel, tiny_config

    config = tiny_config(image_size=32, patch_size=8)
    config.vision_config.grounding_head = "pooled"
    model = LoclipModel(config)
    last = model.vision_model.box_head.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.logit(torch.tensor([0.1, 0.4, 0.5, 0.4])))  # cx 0.1, w 0.5: x1 = -0.15
    enc = model.vision_model.encode(torch.randn(1, 3, 32, 32))
    out = model.vision_model.grounding(enc, torch.randn(1, 1, config.projection_dim))
    assert out.raw_boxes[0, 0, 0].item() == pytest.approx(-0.15) and out.boxes[0, 0, 0].item() == 0.0
    target = torch.tensor([[[0.0, 0.2, 0.5, 0.6]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    (grad,) = torch.autograd.grad(
        grounding_loss(out.raw_boxes, target, mask)["ground_l2"], [last.bias], retain_graph=True
    )
    assert grad[0] < 0 and abs(grad[2]) < 1e-6  # move the centre right; the width is right already
    (clamped,) = torch.autograd.grad(grounding_loss(out.boxes, target, mask)["ground_l2"], [last.bias])
    assert clamped[2] < -1e-3  # what clamping did: widen the box


@pytest.mark.parametrize(
    ("head", "kind"), [("pooled", "l2"), ("pooled", "l1_giou"), ("dense", "l2"), ("dense", "l1_giou")]
)
def test_each_head_owns_its_loss(head: str, kind: str) -> None:
    """A trainer asks the model's head (``box_head.loss``) instead of telling the heads apart by their outputs:
    the pooled head's is ``grounding_loss`` of its unclamped boxes, the dense head's ``dense_grounding_loss`` of
    its cells, the same numbers either way."""
    from loclip.encoder import LoclipModel, tiny_config
    from loclip.encoder.prompter import BoxHead, DenseBoxHead

    torch.manual_seed(0)
    config = tiny_config(image_size=32, patch_size=8)
    config.vision_config.grounding_head = head
    vision = LoclipModel(config).vision_model
    enc = vision.encode(torch.randn(2, 3, 32, 32))
    out = vision.grounding(enc, torch.randn(2, 3, config.projection_dim))
    target, mask = random_boxes(2, 3), torch.tensor([[True, True, False], [True, False, False]])
    assert out.grid == enc.grid  # the output carries its grid: the loss needs nothing else of the pass
    got = vision.box_head.loss(out, target, mask, kind, giou_weight=2.0)
    if head == "pooled":
        assert isinstance(vision.box_head, BoxHead) and out.cell_logits is None
        want = grounding_loss(out.raw_boxes, target, mask, kind, giou_weight=2.0)
    else:
        assert isinstance(vision.box_head, DenseBoxHead)
        want = dense_grounding_loss(out.cell_logits, out.cell_boxes, target, mask, enc.grid, kind, giou_weight=2.0)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
