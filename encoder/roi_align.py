"""RoIAlign in plain torch (no torchvision): the baseline region embedding over patch features.

Semantics follow Mask R-CNN's RoIAlign with ``aligned=True`` (pixel centres at half-integers) and a
fixed ``sampling_ratio`` (the adaptive variant makes the sample count box-dependent, which would stop
us from batching all boxes in one gather). A sample point outside ``[-1, size]`` contributes zero;
between -1 and 0 (or size-1 and size) it is clamped to the border, as in the reference operator.
"""

from __future__ import annotations

import torch


def _sample_coords(lo: torch.Tensor, hi: torch.Tensor, bins: int, ratio: int) -> torch.Tensor:
    """Sample positions along one axis.

    lo, hi: ``[K]`` box edges in feature-pixel units → ``[K, bins * ratio]`` positions, bin-major.
    """
    step = (hi - lo).clamp(min=0) / bins  # aligned=True lets a box shrink to zero size
    offs = (torch.arange(bins * ratio, device=lo.device, dtype=lo.dtype) + 0.5) / ratio  # in bin units
    return lo[:, None] + offs[None, :] * step[:, None]


def _bilinear_weights(pos: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Neighbour indices and weights for 1-D bilinear sampling with RoIAlign's border rules.

    pos: ``[K, S]`` → (low index, high index, low weight, high weight), each ``[K, S]``.
    """
    valid = (pos >= -1.0) & (pos <= size)
    p = pos.clamp(min=0.0)
    low = p.floor().clamp(max=size - 1)
    at_edge = low >= size - 1
    p = torch.where(at_edge, low, p)
    high = torch.where(at_edge, low, low + 1)
    frac = p - low
    w_low = (1 - frac) * valid
    w_high = frac * valid
    return low.long(), high.long(), w_low, w_high


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    batch_index: torch.Tensor,
    output_size: int,
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
) -> torch.Tensor:
    """Pool ``output_size x output_size`` bins from each box.

    Args:
        features: ``[B, C, H, W]`` feature map.
        boxes: ``[K, 4]`` xyxy in input coordinates; multiplied by ``spatial_scale`` to reach feature pixels.
        batch_index: ``[K]`` long, which image each box belongs to.
        output_size: bins per side.
        spatial_scale: input units → feature pixels (e.g. ``W`` for boxes normalised to [0, 1]).
        sampling_ratio: bilinear samples per bin side (averaged).

    Returns:
        ``[K, C, output_size, output_size]``.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, H, W], got shape {tuple(features.shape)}")
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [K, 4], got shape {tuple(boxes.shape)}")
    if batch_index.shape != boxes.shape[:1]:
        raise ValueError(f"batch_index must be [K]={boxes.shape[0]}, got shape {tuple(batch_index.shape)}")
    if output_size < 1 or sampling_ratio < 1:
        raise ValueError(f"output_size and sampling_ratio must be >= 1, got {output_size}, {sampling_ratio}")
    b, c, h, w = features.shape
    k = boxes.shape[0]
    if k == 0:
        return features.new_zeros(0, c, output_size, output_size)

    scaled = boxes.to(features.dtype) * spatial_scale - 0.5  # aligned=True: shift to pixel centres
    ys = _sample_coords(scaled[:, 1], scaled[:, 3], output_size, sampling_ratio)  # [K, Sy]
    xs = _sample_coords(scaled[:, 0], scaled[:, 2], output_size, sampling_ratio)  # [K, Sx]
    y0, y1, wy0, wy1 = _bilinear_weights(ys, h)
    x0, x1, wx0, wx1 = _bilinear_weights(xs, w)

    # Gather the 4 neighbours of every (y, x) sample straight from a [B*H*W, C] view: no per-box copy
    # of the feature map, so memory scales with the number of samples, not boxes x map size.
    table = features.permute(0, 2, 3, 1).reshape(b * h * w, c)
    base = (batch_index * (h * w))[:, None, None]

    def corner(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return table[base + yi[:, :, None] * w + xi[:, None, :]]  # [K, Sy, Sx, C]

    def outer(a: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        return (a[:, :, None] * bb[:, None, :])[..., None]  # [K, Sy, Sx, 1]

    sampled = (
        corner(y0, x0) * outer(wy0, wx0)
        + corner(y0, x1) * outer(wy0, wx1)
        + corner(y1, x0) * outer(wy1, wx0)
        + corner(y1, x1) * outer(wy1, wx1)
    )
    r = sampling_ratio
    pooled = sampled.reshape(k, output_size, r, output_size, r, c).mean(dim=(2, 4))
    return pooled.permute(0, 3, 1, 2)
