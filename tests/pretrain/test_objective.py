"""The objective's text filter (identical captions only, for text towers trained from scratch) and its text
encoding."""

import math

import pytest
import torch

from loclip.pretrain.losses import region_text_loss
from loclip.pretrain.objective import caption_ids


def test_caption_ids_are_equal_exactly_for_identical_captions() -> None:
    ids = torch.randint(4, 1100, (300, 20), generator=torch.Generator().manual_seed(0))
    ids[1] = ids[0]
    ids[2] = ids[0]
    ids[2, 7] += 1  # one token differs
    mask = torch.ones_like(ids)
    codes = caption_ids(ids, mask)
    assert codes[0] == codes[1] and codes[0] != codes[2]
    assert len(set(codes.tolist())) == 299  # no two different captions share an id
    short_mask = mask.clone()
    short_mask[:, 15:] = 0
    other_padding = ids.clone()
    other_padding[:, 15:] = 1  # whatever sits under the mask does not change an id
    assert torch.equal(caption_ids(ids, short_mask), caption_ids(other_padding, short_mask))
    prefix = short_mask.clone()
    prefix[:, 14] = 0
    assert not torch.equal(caption_ids(ids, prefix), caption_ids(ids, short_mask))  # a shorter caption differs
    # the same caption gets the same id alone and inside a batch of any size (float codes did not)
    assert all(caption_ids(ids[i : i + 1], mask[i : i + 1]) == codes[i] for i in (0, 57, 299))


def test_exact_filter_drops_identical_captions_only_even_when_embeddings_look_alike() -> None:
    # An untrained text tower embeds every caption alike (cosine > 0.9): the embedding filter then drops every
    # negative and the region loss collapses to 0; identity ids keep all different captions as negatives.
    n = 12
    regions = torch.randn(1, n, 16, dtype=torch.float64)
    texts = torch.ones(1, n, 16, dtype=torch.float64) + 0.01 * torch.randn(1, n, 16, dtype=torch.float64)
    mask = torch.ones(1, n, dtype=torch.bool)
    scale = torch.zeros(1, dtype=torch.float64)  # temperature 1
    collapsed = region_text_loss(regions, texts, mask, scale, 0.9)["region_text"]
    tokens = torch.arange(n)[:, None].repeat(1, 5) + 4
    tokens[5] = tokens[2]  # regions 2 and 5 carry the same caption
    codes = caption_ids(tokens, torch.ones_like(tokens))[None]
    kept = region_text_loss(regions, texts, mask, scale, 0.9, filter_ids=codes)["region_text"]
    assert collapsed < 1e-3
    # by hand: InfoNCE both ways over all pairs except 2<->5, each other's negative no more
    r = torch.nn.functional.normalize(regions[0], dim=-1)
    t = torch.nn.functional.normalize(texts[0], dim=-1)
    logits = r @ t.T
    allowed = ~torch.eye(n, dtype=torch.bool)
    allowed[2, 5] = allowed[5, 2] = False
    allowed |= torch.eye(n, dtype=torch.bool)

    def side(lg: torch.Tensor) -> torch.Tensor:
        return -(lg.diag() - torch.logsumexp(lg.masked_fill(~allowed, float("-inf")), dim=1)).mean()

    torch.testing.assert_close(kept, 0.5 * (side(logits) + side(logits.T)))
    assert abs(kept.item() - math.log(n)) < 0.5


def test_text_encoding_dedup_and_trim_match_plain_calls() -> None:
    # The objective encodes all texts in one call, each distinct row once, trailing padding dropped and short
    # rows apart from long ones: embeddings and gradients must equal plain padded per-row encoding.
    from loclip.encoder import LoclipModel, tiny_config
    from loclip.pretrain.objective import _encode_texts

    torch.manual_seed(0)
    model = LoclipModel(tiny_config(max_text_length=16)).eval()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([3, 12, 5, 3, 4, 9, 3, 2])
    ids = torch.randint(4, 60, (8, 16), generator=g)
    ids[3] = ids[0]  # duplicates across groups
    mask = (torch.arange(16)[None] < lengths[:, None]).long()
    ids = ids * mask
    ids[torch.arange(8), lengths - 1] = 3  # eos ends every row
    parts = {"a": (ids[:3], mask[:3]), "b": (ids[3:], mask[3:]), "empty": (ids[:0], mask[:0])}
    out = _encode_texts(model, parts)
    assert out["empty"].shape == (0, model.config.projection_dim)
    fast = torch.cat([out["a"], out["b"]])
    fast_grad = torch.autograd.grad(fast.square().sum(), model.text_model.embeddings.token_embedding.weight)[0]
    plain = model.get_text_features(ids, mask)
    plain_grad = torch.autograd.grad(plain.square().sum(), model.text_model.embeddings.token_embedding.weight)[0]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_grad, plain_grad, atol=1e-5, rtol=1e-5)


def test_a_temperature_saved_above_the_cap_still_trains(tmp_path) -> None:
    """OpenAI CLIP checkpoints carry logit_scale = 4.6052 > ln 100: before the fix its gradient was exactly 0 in
    every loss term, from step 0 on. Saved, reloaded and trained on unrelated pairs, it now moves (down)."""
    from loclip.encoder import LoclipModel, tiny_config
    from loclip.pretrain.config import LossRecipe
    from loclip.pretrain.objective import PretrainObjective

    torch.manual_seed(0)
    model = LoclipModel(tiny_config(image_size=32, patch_size=8, max_text_length=8))
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)
    model.save_pretrained(tmp_path)
    model = LoclipModel.from_pretrained(tmp_path)
    assert model.logit_scale.item() == pytest.approx(4.6052)
    objective = PretrainObjective(model, LossRecipe(subcaptions=False, regions=False, grounding=False))
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-2, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    batch = {
        "pixel_values": torch.randn(8, 3, 32, 32, generator=g),
        "input_ids": torch.randint(4, 60, (8, 8), generator=g),
        "attention_mask": torch.ones(8, 8, dtype=torch.long),
    }
    for step in range(5):
        loss, _ = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            assert model.logit_scale.grad.abs().item() > 0
        optimizer.step()
    assert model.logit_scale.item() < math.log(100)


@pytest.mark.parametrize("variant", ["clip", "clip_long", "dreamlip", "dreamlip_sgl", "cloc", "cloc_roialign"])
def test_learning_proof_variants_switch_the_loss_terms_they_name(variant: str) -> None:
    from loclip.pretrain.config import SGL_WEIGHT, PretrainRecipe, apply_variant

    recipe = apply_variant(PretrainRecipe(), variant)
    loss = recipe.loss
    assert loss.subcaptions == (variant not in ("clip", "clip_long"))
    assert recipe.data.caption_source == ("long_full" if variant == "clip_long" else "raw")
    assert loss.grouping_weight == (SGL_WEIGHT if variant == "dreamlip_sgl" else 0.0)
    assert loss.regions == variant.startswith("cloc") and loss.grounding == (variant == "cloc")
    assert loss.region_method == ("roialign" if variant == "cloc_roialign" else "prompter")
    recipe = PretrainRecipe()
    recipe.loss.grouping_weight = 0.25  # a weight the recipe sets is kept
    assert apply_variant(recipe, "dreamlip_sgl").loss.grouping_weight == 0.25
    with pytest.raises(ValueError, match="variant must be one of"):
        apply_variant(PretrainRecipe(), "sgl")


def test_subcaption_exact_filter_drops_only_repeated_sentences() -> None:
    from loclip.pretrain.losses import multi_positive_loss

    g = torch.Generator().manual_seed(0)
    images, texts = torch.randn(4, 8, generator=g), torch.randn(4, 2, 8, generator=g)
    mask = torch.ones(4, 2, dtype=torch.bool)
    scale = torch.tensor(2.0)
    distinct = torch.arange(8).reshape(4, 2)
    plain = multi_positive_loss(images, texts, mask, scale)["multi_positive"]
    assert torch.allclose(multi_positive_loss(images, texts, mask, scale, filter_ids=distinct)["multi_positive"], plain)
    same = distinct.clone()
    same[:, 0] = 7  # slot 0 holds one sentence for every image: no negative left there, so only slot 1 counts
    filtered = multi_positive_loss(images, texts, mask, scale, filter_ids=same)["multi_positive"]
    only_slot1 = multi_positive_loss(images, texts[:, 1:], mask[:, 1:], scale)["multi_positive"]
    assert torch.allclose(filtered, only_slot1 / 2)
