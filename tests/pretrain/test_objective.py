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
