"""The objective's text filter: identical captions only, for text towers trained from scratch."""

import math

import torch

from loclip.pretrain.losses import region_text_loss
from loclip.pretrain.objective import caption_codes


def test_caption_codes_separate_exact_duplicates_only() -> None:
    ids = torch.randint(4, 1100, (300, 20), generator=torch.Generator().manual_seed(0))
    ids[1] = ids[0]
    ids[2] = ids[0]
    ids[2, 7] += 1  # one token differs
    mask = torch.ones_like(ids)
    codes = torch.nn.functional.normalize(caption_codes(ids, mask), dim=-1)
    sim = codes @ codes.t()
    assert sim[0, 1] > 0.999
    off = sim - torch.eye(300) * 2
    off[0, 1] = off[1, 0] = -1
    assert off.max() < 0.9  # different captions never pass the 0.9 filter
    short_mask = mask.clone()
    short_mask[:, 15:] = 0
    other_padding = ids.clone()
    other_padding[:, 15:] = 1  # whatever sits under the mask does not change a code
    torch.testing.assert_close(caption_codes(ids, short_mask), caption_codes(other_padding, short_mask))


def test_exact_filter_keeps_negatives_when_text_embeddings_all_look_alike() -> None:
    # An untrained text tower embeds every caption alike (cosine > 0.9): the embedding filter then drops every
    # negative and the region loss collapses to 0; identity codes keep all different captions as negatives.
    n = 12
    regions = torch.randn(1, n, 16)
    texts = torch.ones(1, n, 16) + 0.01 * torch.randn(1, n, 16)
    mask = torch.ones(1, n, dtype=torch.bool)
    scale = torch.zeros(1)  # temperature 1
    collapsed = region_text_loss(regions, texts, mask, scale, 0.9)["region_text"]
    ids = torch.arange(n)[:, None].repeat(1, 5) + 4
    codes = caption_codes(ids, torch.ones_like(ids))[None]
    kept = region_text_loss(regions, texts, mask, scale, 0.9, filter_embeds=codes)["region_text"]
    assert collapsed < 1e-3
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
