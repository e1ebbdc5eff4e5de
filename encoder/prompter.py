"""The CLOC Prompter: turns (image patch tokens, a box or a phrase) into a region embedding.

One pre-norm transformer layer runs over ``[prompt tokens ; patch tokens]``. Only the prompt tokens'
outputs are pooled, and in a single layer those depend on the patch tokens only through attention keys
and values, so the patch side is projected once per image and shared by all its prompts; every prompt
attends to the patches and to its own tokens only (a block mask), which makes a box's embedding
independent of the other boxes, the padding and the batch, and costs ``O(R * T * N)``, not ``O(R * N^2)``.

The grounding heads (``BoxHead``, ``DenseBoxHead``) turn phrase-prompted outputs into boxes; each owns its loss
behind the one signature of ``GroundingHead.loss`` (``head.loss(output, targets, mask)``), so a trainer asks
whichever head the model has.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import cxcywh_to_xyxy, patch_coverage
from .choices import BoxLoss
from .grounding_loss import dense_grounding_loss, grounding_loss

if TYPE_CHECKING:
    from .modeling import GroundingOutput

_MIN_COVERAGE = 1e-2  # floor of the attention prior: a patch outside the box gets locality * log(0.01)


def cell_centres(grid: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised (x, y) centres of the patch cells, row-major like the trunk's tokens: ``[h*w, 2]``."""
    h, w = grid
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(h * w, 2)


class PrompterMemory(NamedTuple):
    """The image side of the Prompter layer, shared by all prompts of a batch of images.

    context: ``[B, N, W]`` normalised patch tokens plus position codes (also the dense box head's input).
    keys, values: ``[B, H, N, d]`` attention keys and values of the patches.
    """

    context: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor


class SinusoidalPointEncoding(nn.Module):
    """Fixed sinusoidal features of 2-D points in [0, 1], followed by a learned linear map.

    Frequencies are geometric from 1 to ``max_frequency`` cycles per image side. Used for box corners
    and patch centres alike, so the two live in one coordinate code.
    """

    def __init__(self, width: int, max_frequency: float) -> None:
        super().__init__()
        if width % 4:
            raise ValueError(f"width must be divisible by 4, got {width}")
        self.max_frequency = max_frequency
        self.register_buffer("freqs", self.make_freqs(width // 4, max_frequency), persistent=False)
        self.proj = nn.Linear(width, width)

    @staticmethod
    def make_freqs(n: int, max_frequency: float) -> torch.Tensor:
        """``n`` angular frequencies, geometric from 1 to ``max_frequency`` cycles per unit."""
        return 2 * math.pi * torch.logspace(0, math.log10(max_frequency), n) if n > 1 else torch.tensor([2 * math.pi])

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points ``[..., 2]`` (x, y) → ``[..., width]``."""
        angles = points[..., :, None].to(self.freqs.dtype) * self.freqs  # [..., 2, n]
        feats = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # [..., 4n]
        return self.proj(feats.to(self.proj.weight.dtype))


class Prompter(nn.Module):
    """Prompt encoder + one transformer layer + mean pool.

    Args:
        width: trunk width (patch token size).
        num_heads: attention heads.
        mlp_ratio: MLP hidden size as a multiple of ``width``.
        text_embed_dim: size of phrase embeddings (the text tower's output).
        max_frequency: top frequency of the point encoding.
        eps: LayerNorm epsilon.
    """

    def __init__(
        self, width: int, num_heads: int, mlp_ratio: float, text_embed_dim: int, max_frequency: float, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.width, self.num_heads = width, num_heads
        self.point_encoding = SinusoidalPointEncoding(width, max_frequency)
        self.corner_embed = nn.Parameter(torch.zeros(2, width))  # top-left, bottom-right
        self.phrase_proj = nn.Linear(text_embed_dim, width)
        self.phrase_embed = nn.Parameter(torch.zeros(width))
        self.norm_patch = nn.LayerNorm(width, eps=eps)
        self.norm_prompt = nn.LayerNorm(width, eps=eps)
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.norm_mlp = nn.LayerNorm(width, eps=eps)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.norm_out = nn.LayerNorm(width, eps=eps)
        # Box-aware attention prior: a box prompt's logit to a patch gets locality * log(share of the patch
        # inside the box) (floored), so attention starts on the box and content decides within it. Learnable,
        # so training may relax it; shape [1] for DeepSpeed's parameter broadcast.
        self.locality = nn.Parameter(torch.ones(1))

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes ``[B, R, 4]`` normalised xyxy → prompt tokens ``[B, R, 2, W]`` (one per corner)."""
        corners = boxes.reshape(*boxes.shape[:-1], 2, 2)  # (x1, y1), (x2, y2)
        return self.point_encoding(corners) + self.corner_embed

    def embed_phrases(self, phrase_embeds: torch.Tensor) -> torch.Tensor:
        """phrase embeddings ``[B, P, E]`` → prompt tokens ``[B, P, 1, W]``.

        Embeddings are L2-normalised first: only their direction carries meaning in a contrastive space,
        so raw and normalised text features prompt alike.
        """
        return (self.phrase_proj(F.normalize(phrase_embeds, dim=-1)) + self.phrase_embed)[:, :, None]

    def patch_positions(self, grid: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Patch-centre encodings ``[h*w, W]`` in the model frame (row-major like the trunk's tokens)."""
        return self.point_encoding(cell_centres(grid, device, torch.float32)).to(dtype)

    def box_prior(self, boxes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Attention bias of box prompts over patches: ``[B, R, 4]`` → ``[B, R, N]``."""
        return self.locality * patch_coverage(boxes, grid).clamp(min=_MIN_COVERAGE).log()

    def context(self, patch_tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """What prompts attend to: normalised patch tokens plus their position codes, ``[B, N, W]``."""
        return self.norm_patch(patch_tokens) + self.patch_positions(grid, patch_tokens.device, patch_tokens.dtype)

    def memory(self, patch_tokens: torch.Tensor, grid: tuple[int, int]) -> PrompterMemory:
        """The patch side of the layer: ``context`` and its attention keys and values, ``[B, H, N, d]``.

        It depends on the image only, so one memory serves every prompt of that image (boxes and phrases).
        """
        b, n, width = patch_tokens.shape
        heads = self.num_heads
        ctx = self.context(patch_tokens, grid)

        def split(y: torch.Tensor) -> torch.Tensor:  # [B, N, W] -> [B, H, N, d]
            return y.reshape(b, n, heads, width // heads).transpose(1, 2)

        return PrompterMemory(ctx, split(self.k_proj(ctx)), split(self.v_proj(ctx)))

    def forward(
        self,
        patch_tokens: torch.Tensor,
        grid: tuple[int, int],
        prompts: torch.Tensor,
        prior: torch.Tensor | None = None,
        memory: PrompterMemory | None = None,
    ) -> torch.Tensor:
        """Run the layer for every prompt.

        Args:
            patch_tokens: ``[B, N, W]`` final trunk tokens of the patches (``N = h * w``).
            grid: ``(h, w)`` patches per column and row.
            prompts: ``[B, R, T, W]`` prompt tokens (``T`` = 2 for a box, 1 for a phrase).
            prior: ``[B, R, N]`` additive attention bias of each prompt over the patches (``box_prior`` for
                boxes), or ``None`` (phrases: content alone decides where they attend).
            memory: ``self.memory(patch_tokens, grid)`` when the caller already has it (not recomputed).

        Returns:
            ``[B, R, W]``: the mean of each prompt's output tokens after the layer and a final norm.
        """
        b, r, t, width = prompts.shape
        n = patch_tokens.shape[1]
        heads, d = self.num_heads, width // self.num_heads
        if memory is None:
            memory = self.memory(patch_tokens, grid)

        x = prompts.reshape(b, r * t, width)
        xn = self.norm_prompt(x)

        def split(y: torch.Tensor) -> torch.Tensor:  # [B, L, W] -> [B, H, L, d]
            return y.reshape(b, -1, heads, d).transpose(1, 2)

        q = split(self.q_proj(xn))
        k = torch.cat([memory.keys, split(self.k_proj(xn))], dim=2)
        v = torch.cat([memory.values, split(self.v_proj(xn))], dim=2)
        owner = torch.arange(r, device=x.device).repeat_interleave(t)  # prompt index of each token
        own = torch.zeros(r * t, r * t, dtype=q.dtype, device=x.device)
        own = own.masked_fill(owner[:, None] != owner[None, :], float("-inf"))  # own tokens only
        if prior is None:
            patch_bias = torch.zeros(b, r * t, n, dtype=q.dtype, device=x.device)
        else:
            patch_bias = prior.to(q.dtype).repeat_interleave(t, dim=1)  # [B, R*T, N]
        bias = torch.cat([patch_bias, own.expand(b, -1, -1)], dim=-1)[:, None]  # [B, 1, R*T, N + R*T]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.out_proj(attn.transpose(1, 2).reshape(b, r * t, width))
        x = x + self.mlp(self.norm_mlp(x))
        x = self.norm_out(x)
        return x.reshape(b, r, t, width).mean(dim=2)


class GroundingHead(nn.Module):
    """What every grounding head offers a trainer: its loss on its own output, one signature for all heads."""

    def loss(
        self,
        out: GroundingOutput,
        target_boxes: torch.Tensor,
        box_mask: torch.Tensor,
        kind: BoxLoss = "l2",
        giou_weight: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """This head's loss on its output ``out`` (``LoclipVisionModel.grounding``) for ``[B, M]`` phrases, against
        ``target_boxes`` ``[B, M, 4]`` (normalised xyxy) where ``box_mask`` ``[B, M]`` holds: the terms of ``kind``
        (see ``grounding_loss``), which the caller sums."""
        return self.loss_of(out)(target_boxes, box_mask, kind=kind, giou_weight=giou_weight)

    def loss_of(self, out: GroundingOutput) -> Callable[..., dict[str, torch.Tensor]]:
        """The head's loss function with its own predictions in ``out`` filled in (the targets and options left)."""
        raise NotImplementedError


class BoxHead(GroundingHead):
    """2-layer GELU MLP: pooled phrase-prompted features ``[..., W]`` → normalised xyxy boxes ``[..., 4]``.

    It regresses centre and size through a sigmoid. The box is returned as regressed: it may reach past the
    image edge (a centre near the edge with a large size); ``GroundingOutput.boxes`` clamps it for output,
    while the loss sees it unclamped, so that an error past the edge still moves both the centre and the size.
    """

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, 4))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cxcywh = self.mlp(features).sigmoid()
        return cxcywh_to_xyxy(cxcywh)

    def loss_of(self, out: GroundingOutput) -> Callable[..., dict[str, torch.Tensor]]:
        """``grounding_loss`` of the regressed boxes as they were before the clamp (``out.raw_boxes``)."""
        return partial(grounding_loss, out.raw_boxes)


class DenseBoxHead(GroundingHead):
    """Grounding by cells: a phrase-prompted embedding scores every patch cell and each cell regresses a box.

    For each phrase and each cell ``i`` it gives a logit (the phrase's query against the cell's key) and a box
    anchored at the cell (centre = sigmoid(offset + logit(cell centre)), size through a sigmoid), from a
    2-layer GELU MLP over the cell's context plus the phrase. The answer is the box of the best cell.
    Why not one box from the pooled embedding (CLOC's head, ``BoxHead``): the pooled vector must encode
    location in a space trained for contrast, and at small scale such a head collapses to the mean box;
    cell scores reuse what the region loss already teaches (what is where), and each cell only has to
    measure its own object's extent.
    """

    SIZE_BIAS = -1.5  # initial size logit: boxes start at ~0.18 of the image side

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.cell_in = nn.Linear(width, hidden)  # first MLP layer, split so [B, P, N, W] is never built
        self.phrase_in = nn.Linear(width, hidden, bias=False)
        self.out = nn.Linear(hidden, 4)
        self.size_bias = nn.Parameter(torch.full((2,), self.SIZE_BIAS))

    def forward(
        self, context: torch.Tensor, phrases: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """context ``[B, N, W]`` (``Prompter.context``), phrases ``[B, P, W]`` (pooled phrase-prompted outputs).

        Returns ``(cell_logits [B, P, N], cell_boxes [B, P, N, 4])``, boxes as normalised xyxy, unclamped (they
        may reach past the image edge; see ``BoxHead``).
        """
        width = context.shape[-1]
        logits = torch.einsum("bpw,bnw->bpn", self.query(phrases), self.key(context)) / math.sqrt(width)
        hidden = F.gelu(self.cell_in(context)[:, None] + self.phrase_in(phrases)[:, :, None])  # [B, P, N, H]
        raw = self.out(hidden)
        centres = cell_centres(grid, context.device, raw.dtype)
        cxcy = (raw[..., :2] + torch.logit(centres)).sigmoid()
        wh = (raw[..., 2:] + self.size_bias).sigmoid()
        return logits, cxcywh_to_xyxy(torch.cat([cxcy, wh], dim=-1))

    def loss_of(self, out: GroundingOutput) -> Callable[..., dict[str, torch.Tensor]]:
        """``dense_grounding_loss`` of the cells' scores and boxes (``out.cell_logits``, ``out.cell_boxes``) over
        the pass's grid (``out.grid``)."""
        return partial(dense_grounding_loss, out.cell_logits, out.cell_boxes, grid=out.grid)

    @staticmethod
    def select(cell_logits: torch.Tensor, cell_boxes: torch.Tensor) -> torch.Tensor:
        """The box of each phrase's best cell: ``[B, P, N]``, ``[B, P, N, 4]`` → ``[B, P, 4]``."""
        best = cell_logits.argmax(dim=-1)
        return torch.gather(cell_boxes, 2, best[..., None, None].expand(-1, -1, 1, 4))[:, :, 0]
