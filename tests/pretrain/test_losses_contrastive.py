"""InfoNCE-family losses (CLIP, SigLIP, DreamLIP multi-positive, CLOC region–text) against naive float64 loops."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from loclip.pretrain.losses import (
    clip_loss,
    gather_no_grad,
    gather_with_grad,
    multi_positive_loss,
    rank_and_world,
    region_text_loss,
    region_weight,
    siglip_loss,
)

D = 6


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def nll(logits: list[torch.Tensor], positive: int) -> torch.Tensor:
    """-log softmax(logits)[positive], the softmax written out."""
    return -(logits[positive] - torch.log(sum(torch.exp(v) for v in logits)))


def ref_pairs(
    queries: list[torch.Tensor],
    keys: list[torch.Tensor],
    scale: torch.Tensor,
    kept: Callable[[int, int], bool] = lambda i, j: True,
) -> torch.Tensor:
    """Mean over pairs of the symmetric InfoNCE; row i's candidates are i and the j with kept(i, j)."""
    total = torch.zeros((), dtype=torch.float64)
    for i in range(len(queries)):
        cand = [j for j in range(len(keys)) if j == i or kept(i, j)]
        forward = nll([scale * cos(queries[i], keys[j]) for j in cand], cand.index(i))
        backward = nll([scale * cos(keys[i], queries[j]) for j in cand], cand.index(i))
        total = total + (forward + backward) / 2
    return total / len(queries)


def leaves(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]


def assert_same_value_and_grads(ours: torch.Tensor, ref: torch.Tensor, inputs: list[torch.Tensor]) -> None:
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    got = torch.autograd.grad(ours, inputs, allow_unused=True)
    want = torch.autograd.grad(ref, inputs, allow_unused=True)
    for g, w, x in zip(got, want, inputs):
        w = torch.zeros_like(x) if w is None else w
        assert g is not None, "an input that feeds the loss got no gradient"
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)


def test_collectives_are_identity_without_a_process_group() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    assert rank_and_world() == (0, 1)
    assert gather_with_grad(x) is x
    gathered = gather_no_grad(x)
    assert not gathered.requires_grad and torch.equal(gathered, x)


@pytest.mark.parametrize("local_loss", [True, False])
def test_clip_matches_reference(local_loss: bool) -> None:
    image, text = leaves((5, D), (5, D))
    logit_scale = torch.tensor(math.log(7.0), dtype=torch.float64, requires_grad=True)
    ours = clip_loss(image, text, logit_scale, local_loss=local_loss)
    assert list(ours) == ["clip"]
    ref = ref_pairs(list(image), list(text), logit_scale.exp())
    assert_same_value_and_grads(ours["clip"], ref, [image, text, logit_scale])


def test_logit_scale_is_capped_at_100_and_never_freezes() -> None:
    image, text = leaves((4, D), (4, D))
    logit_scale = torch.tensor(math.log(500.0), dtype=torch.float64, requires_grad=True)
    loss = clip_loss(image, text, logit_scale)["clip"]
    torch.testing.assert_close(loss, ref_pairs(list(image), list(text), torch.tensor(100.0)))
    loss.backward()
    assert image.grad.abs().sum() > 0
    # above the cap, the gradient the loss has at the cap reaches the scale when it asks for a lower scale,
    # and nothing else does (a plain clamp would give 0 either way: the temperature would freeze)
    at_cap = torch.tensor(math.log(100.0), dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(clip_loss(image.detach(), text.detach(), at_cap)["clip"], [at_cap])
    torch.testing.assert_close(logit_scale.grad, expected if expected > 0 else torch.zeros_like(expected))


@pytest.mark.parametrize("aligned", [False, True])
def test_a_scale_just_above_the_cap_as_in_openai_clip_checkpoints_still_learns(aligned: bool) -> None:
    """OpenAI CLIP checkpoints carry logit_scale = 4.6052 > ln 100 = 4.60517: the gradient must not be 0 when
    the loss wants a lower scale (random pairs), and is 0 when it wants a higher one (aligned pairs)."""
    torch.manual_seed(1)
    image = torch.randn(8, D, dtype=torch.float64)
    text = image.clone() if aligned else torch.randn(8, D, dtype=torch.float64)
    scale = torch.tensor(4.6052, dtype=torch.float64, requires_grad=True)
    clip_loss(image, text, scale)["clip"].backward()
    assert (scale.grad == 0) if aligned else (scale.grad > 1)


def test_low_precision_inputs_give_a_float32_loss() -> None:
    image, text = torch.randn(4, D, dtype=torch.bfloat16), torch.randn(4, D, dtype=torch.bfloat16)
    loss = clip_loss(image, text, torch.tensor(2.0, dtype=torch.bfloat16))["clip"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_siglip_matches_reference() -> None:
    image, text = leaves((4, D), (4, D))
    logit_scale = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
    logit_bias = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    ref = torch.zeros((), dtype=torch.float64)
    for i in range(4):
        for j in range(4):
            label = 1.0 if i == j else -1.0
            logit = logit_scale.exp() * cos(image[i], text[j]) + logit_bias
            ref = ref - torch.log(1 / (1 + torch.exp(-label * logit)))
    ours = siglip_loss(image, text, logit_scale, logit_bias)["siglip"]
    assert_same_value_and_grads(ours, ref / 4, [image, text, logit_scale, logit_bias])


@pytest.mark.parametrize("local_loss", [True, False])
def test_multi_positive_matches_reference_with_masked_subcaptions(local_loss: bool) -> None:
    image, subs = leaves((4, D), (4, 4, D))
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)  # slot 2 empty
    logit_scale = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    slot_losses = []
    for k in range(4):
        rows = [b for b in range(4) if mask[b, k]]
        if len(rows) > 1:  # slot 3 holds a single pair, slot 2 none: neither counts in the mean
            slot_losses.append(ref_pairs([image[b] for b in rows], [subs[b, k] for b in rows], logit_scale.exp()))
    ref = sum(slot_losses) / len(slot_losses)
    ours = multi_positive_loss(image, subs, mask, logit_scale, local_loss=local_loss)["multi_positive"]
    assert_same_value_and_grads(ours, ref, [image, subs, logit_scale])
    # A masked sub-caption gets no gradient: it is neither a query nor a candidate.
    (g,) = torch.autograd.grad(multi_positive_loss(image, subs, mask, logit_scale)["multi_positive"], [subs])
    assert g[~mask].abs().sum() == 0 and g[mask].abs().sum(-1).gt(0).sum() >= 5


def test_multi_positive_with_no_subcaption_is_zero_with_a_graph() -> None:
    image, subs = leaves((3, D), (3, 2, D))
    loss = multi_positive_loss(image, subs, torch.zeros(3, 2, dtype=torch.bool), torch.tensor(2.0))["multi_positive"]
    loss.backward()
    assert loss == 0 and image.grad is not None and image.grad.abs().sum() == 0


@pytest.mark.parametrize("local_loss", [True, False])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_region_text_matches_reference(local_loss: bool, threshold: float | None) -> None:
    regions, texts = leaves((3, 4, D), (3, 4, D))
    with torch.no_grad():
        texts[1, 0] = texts[0, 0] * 2 + 0.01  # a near-duplicate caption in another image
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=torch.bool)
    logit_scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    valid = mask.nonzero().tolist()
    q, k = [regions[b, m] for b, m in valid], [texts[b, m] for b, m in valid]

    def kept(i: int, j: int) -> bool:
        return threshold is None or cos(k[i], k[j]).item() <= threshold

    ours = region_text_loss(regions, texts, mask, logit_scale, threshold, local_loss)["region_text"]
    assert_same_value_and_grads(ours, ref_pairs(q, k, logit_scale.exp(), kept), [regions, texts, logit_scale])


def test_text_filter_drops_near_duplicates_and_keeps_the_rest() -> None:
    """Captions at cosine 0.95 and exact duplicates leave the denominator; 0.85 stays; the positive stays."""
    e = torch.eye(4, dtype=torch.float64)
    captions = torch.stack(
        [e[0], 0.95 * e[0] + math.sqrt(1 - 0.95**2) * e[1], 0.85 * e[0] + math.sqrt(1 - 0.85**2) * e[2], e[0]]
    )  # pairwise: 0-1 .95, 0-2 .85, 0-3 1.0, 1-2 .8075, 1-3 .95, 2-3 .85
    candidates = {0: [0, 2], 1: [1, 2], 2: [0, 1, 2, 3], 3: [2, 3]}  # worked out by hand from the above
    texts = torch.zeros(2, 3, 4, dtype=torch.float64)
    texts[0, :2], texts[1, 1:] = captions[:2], captions[2:]
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    regions = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    q = [regions[0, 0], regions[0, 1], regions[1, 1], regions[1, 2]]
    scale = torch.tensor(3.0, dtype=torch.float64)

    def expected(kept: Callable[[int, int], bool]) -> torch.Tensor:
        return ref_pairs(q, list(captions), scale, kept)

    filtered = region_text_loss(regions, texts, mask, scale.log(), filter_threshold=0.9)["region_text"]
    torch.testing.assert_close(filtered, expected(lambda i, j: j in candidates[i]))
    unfiltered = region_text_loss(regions, texts, mask, scale.log(), filter_threshold=None)["region_text"]
    torch.testing.assert_close(unfiltered, expected(lambda i, j: True))
    assert filtered < unfiltered  # dropping hard false negatives lowers the loss here
    # No gradient through the filter: region 0's gradient ignores the dropped candidates 1 and 3 entirely.
    (g,) = torch.autograd.grad(filtered, [regions])
    (w,) = torch.autograd.grad(expected(lambda i, j: j in candidates[i]), [regions])
    torch.testing.assert_close(g, w)


def test_region_text_without_regions_is_zero_with_a_graph() -> None:
    regions, texts = leaves((2, 3, D), (2, 3, D))
    logit_scale = torch.tensor(2.0, requires_grad=True)
    loss = region_text_loss(regions, texts, torch.zeros(2, 3, dtype=torch.bool), logit_scale)["region_text"]
    loss.backward()
    assert loss == 0 and loss.requires_grad
    assert regions.grad.abs().sum() == 0 and not torch.isnan(texts.grad).any()


def test_shape_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="text_embeds"):
        clip_loss(torch.randn(3, D), torch.randn(4, D), torch.tensor(1.0))
    regions = torch.randn(2, 3, D)
    with pytest.raises(ValueError, match="box_mask"):
        region_text_loss(regions, regions, torch.ones(2, 2, dtype=torch.bool), torch.tensor(1.0))
    with pytest.raises(ValueError, match="sub_mask"):
        multi_positive_loss(torch.randn(2, D), torch.randn(2, 3, D), torch.ones(2, 2), torch.tensor(1.0))


def test_region_weight_is_lambda_times_the_share_of_images_with_regions() -> None:
    assert region_weight(torch.tensor([True, False, True, True]), 0.4).item() == pytest.approx(0.3)
    assert region_weight(torch.zeros(3, dtype=torch.bool), 1.0).item() == 0
    assert region_weight(torch.zeros(0, dtype=torch.bool), 1.0).item() == 0
