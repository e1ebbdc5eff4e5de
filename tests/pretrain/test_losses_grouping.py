"""DreamLIP sub-caption grouping: weights and loss against explicit per-sub-caption float64 loops."""

from __future__ import annotations

import pytest
import torch

from loclip.pretrain.losses import grouping_loss, grouping_weights

D = 5


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def ref_weights(patches: torch.Tensor, text: torch.Tensor, delta: float) -> list[torch.Tensor]:
    """The paper's weights for one (image, sub-caption), one patch at a time."""
    sims = [cos(text, p) for p in patches]
    low, high = min(sims, key=torch.Tensor.item), max(sims, key=torch.Tensor.item)
    if high.item() == low.item():
        normalised = [torch.ones((), dtype=patches.dtype)] * len(sims)
    else:
        normalised = [(s - low) / (high - low) for s in sims]
    kept = [s if s.item() >= delta else s * 0 for s in normalised]
    mass = sum(kept)
    if mass.item() == 0:
        best = max(range(len(sims)), key=lambda n: sims[n].item())
        return [torch.tensor(float(n == best), dtype=patches.dtype) for n in range(len(sims))]
    return [w / mass for w in kept]


def ref_grouping(patches, texts, mask, scale, delta, negatives) -> torch.Tensor:
    """Grouped embedding per valid sub-caption, then a hand-written softmax over its candidates."""
    grouped = {}
    for b, k in mask.nonzero().tolist():
        weights = ref_weights(patches[b], texts[b, k], delta)
        grouped[b, k] = sum(w * p / p.norm() for w, p in zip(weights, patches[b]))
    losses = []
    for (b, k), g in grouped.items():
        cand = [key for key in grouped if negatives == "batch" or key[0] == b]
        if len(cand) < 2:
            continue
        logits = [scale * cos(g, texts[key]) for key in cand]
        losses.append(-(logits[cand.index((b, k))] - torch.log(sum(torch.exp(v) for v in logits))))
    return sum(losses) / len(losses) if losses else torch.zeros((), dtype=torch.float64)


def batch(b: int = 3, n: int = 6, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    patches = torch.randn(b, n, D, dtype=torch.float64, requires_grad=True)
    texts = torch.randn(b, k, D, dtype=torch.float64, requires_grad=True)
    return patches, texts


MASK = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)  # image 2: a single sub-caption


@pytest.mark.parametrize("negatives", ["image", "batch"])
@pytest.mark.parametrize("delta", [0.0, 0.5, 1.5])
def test_grouping_loss_matches_reference(negatives: str, delta: float) -> None:
    patches, texts = batch()
    logit_scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    ours = grouping_loss(patches, texts, MASK, logit_scale, delta, negatives)["grouping"]
    ref = ref_grouping(patches, texts, MASK, logit_scale.exp(), delta, negatives)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    inputs = [patches, texts, logit_scale]
    for got, want in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(ref, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_gradients_reach_patches_and_texts_through_the_weights() -> None:
    patches, texts = batch()
    with torch.no_grad():
        texts[~MASK] = torch.nan  # padding may hold anything
    loss = grouping_loss(patches, texts, MASK, torch.tensor(2.0), 0.5, "image")["grouping"]
    g_patch, g_text = torch.autograd.grad(loss, [patches, texts])
    assert g_patch[:2].abs().sum() > 0
    assert g_text[MASK & torch.tensor([[1], [1], [0]], dtype=torch.bool)].abs().sum(-1).gt(0).all()
    # image 2 has one sub-caption: no negative within the image, so no gradient at all (mode "image")
    assert g_patch[2].abs().sum() == 0 and g_text[2].abs().sum() == 0 and g_text[~MASK].abs().sum() == 0
    assert torch.isfinite(loss) and torch.isfinite(g_patch).all() and torch.isfinite(g_text).all()
    # the weights themselves are differentiable w.r.t. the text (not a hard, constant selection)
    weights = grouping_weights(patches[:2].detach(), texts[:2, :1], 0.3)
    (g,) = torch.autograd.grad((weights * torch.randn_like(weights)).sum(), [texts])
    assert g.abs().sum() > 0


def test_delta_zero_keeps_every_patch_with_its_normalised_similarity() -> None:
    patches, texts = batch(1, 7, 1)
    weights = grouping_weights(patches, texts, 0.0)[0, 0]
    sims = torch.stack([cos(texts[0, 0], p) for p in patches[0]])
    expected = (sims - sims.min()) / (sims.max() - sims.min())
    torch.testing.assert_close(weights, expected / expected.sum())
    assert (weights > 0).sum() == 6  # all but the least similar patch, whose normalised similarity is 0


def test_delta_above_one_falls_back_to_the_most_similar_patch() -> None:
    patches, texts = batch(2, 5, 2)
    weights = grouping_weights(patches, texts, 1.01)
    sims = torch.nn.functional.normalize(texts, dim=-1) @ torch.nn.functional.normalize(patches, dim=-1).transpose(1, 2)
    torch.testing.assert_close(weights, torch.nn.functional.one_hot(sims.argmax(-1), 5).double())


def test_degenerate_similarities_and_a_single_patch() -> None:
    patches = torch.ones(1, 4, D, dtype=torch.float64, requires_grad=True)  # every patch alike
    texts = torch.randn(1, 2, D, dtype=torch.float64, requires_grad=True)
    uniform = torch.full((1, 2, 4), 0.25, dtype=torch.float64)
    torch.testing.assert_close(grouping_weights(patches, texts, 0.5), uniform)
    single = torch.randn(2, 1, D, dtype=torch.float64, requires_grad=True)  # N = 1
    torch.testing.assert_close(grouping_weights(single, texts.expand(2, 2, D), 0.9), torch.ones(2, 2, 1).double())
    loss = grouping_loss(single, texts.expand(2, 2, D), torch.ones(2, 2, dtype=torch.bool), torch.tensor(1.0), 0.9)
    g_patch, g_text = torch.autograd.grad(loss["grouping"], [single, texts])
    assert torch.isfinite(g_patch).all() and torch.isfinite(g_text).all() and g_text.abs().sum() > 0


def test_one_subcaption_per_image() -> None:
    patches, texts = batch(3, 4, 1)
    mask = torch.tensor([[1], [1], [0]], dtype=torch.bool)
    image = grouping_loss(patches, texts, mask, torch.tensor(1.0), 0.5, "image")["grouping"]
    image.backward()  # K=1 within the image: nothing to contrast, a zero that still backpropagates
    assert image == 0 and patches.grad.abs().sum() == 0
    batch_level = grouping_loss(patches, texts, mask, torch.tensor(1.0), 0.5, "batch")["grouping"]
    ref = ref_grouping(patches, texts, mask, torch.tensor(1.0, dtype=torch.float64).exp(), 0.5, "batch")
    torch.testing.assert_close(batch_level, ref)
    assert batch_level > 0


def test_patch_grid_input_and_bad_arguments() -> None:
    patches, texts = batch(2, 6, 2)
    mask = torch.ones(2, 2, dtype=torch.bool)
    flat = grouping_loss(patches, texts, mask, torch.tensor(1.0), 0.4)["grouping"]
    grid = grouping_loss(patches.reshape(2, 2, 3, D), texts, mask, torch.tensor(1.0), 0.4)["grouping"]
    torch.testing.assert_close(flat, grid)
    with pytest.raises(ValueError, match="negatives"):
        grouping_loss(patches, texts, mask, torch.tensor(1.0), 0.4, "global")
    with pytest.raises(ValueError, match="patch_embeds"):
        grouping_loss(patches[:, :0], texts, mask, torch.tensor(1.0), 0.4)
