"""Image–text contrastive losses (CLIP InfoNCE, SigLIP) with exact distributed gradients.

Why the gradients are exact. Rank ``r`` computes ``L_r`` from its local rows and the rows of all ranks,
gathered with ``gather_with_grad``. The backward of that all-gather hands rank ``r`` the **sum over all
ranks** of ``dL_r'/dx_r`` for its own rows ``x_r``, so the parameter gradient on rank ``r`` is
``d(sum_r' L_r')/dtheta`` restricted to what flows through ``x_r``; DDP/DeepSpeed then **average** over
ranks, which yields ``d(mean_r L_r)/dtheta``. Every loss here is therefore scaled so that
``mean_r L_r`` is the loss of the global batch:

- ``local_loss=True``: local rows against all gathered columns, ``L_r = world * (sum of local row
  losses) / (global rows)`` (= the mean over local rows when ranks hold equal batches, as open_clip);
- ``local_loss=False``: the full global matrix on every rank, ``L_r = L_global``; the all-gather backward
  then sums ``world`` identical copies and the averaging divides them out again.

Per input tensor, the gradient a rank sees for its own rows is ``world`` times that of the single-process
global loss (DDP's averaging applies that factor to the parameters). Every rank must call each loss every
step (the gathers are collectives); ranks may hold different numbers of rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from loclip.encoder.collectives import gather_no_grad, gather_sizes, gather_with_grad, global_mean, rank_and_world
from loclip.encoder.grounding_loss import as_float, check_same_shape

MAX_LOGIT_SCALE = 100.0  # CLIP's cap on the inverse temperature


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dimension in at least float32."""
    return F.normalize(as_float(x), dim=-1)


class _CappedLogScale(torch.autograd.Function):
    """``min(x, cap)`` whose gradient still reaches ``x`` above the cap when it would lower ``x``.

    A plain clamp gives a zero gradient above the cap, so a scale that starts there (OpenAI CLIP checkpoints
    carry ln 100 + 3e-5) or gets there never comes back. OpenCLIP clamps the parameter in place after each
    optimizer step instead; under DeepSpeed the optimizer's fp32 master copy would undo an in-place clamp, so
    the cap lives here: the forward never exceeds it, and a gradient that asks for a lower scale gets through.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, cap: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.cap = cap
        return x.clamp(max=cap)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        raising = (x > ctx.cap) & (grad < 0)  # gradient descent would push it further above the cap
        return torch.where(raising, torch.zeros_like(grad), grad), None


def inverse_temperature(logit_scale: torch.Tensor) -> torch.Tensor:
    """``exp(logit_scale)`` capped at 100; above the cap a gradient that lowers the scale still flows."""
    return _CappedLogScale.apply(as_float(logit_scale), math.log(MAX_LOGIT_SCALE)).exp()


def zero_with_graph(*tensors: torch.Tensor) -> torch.Tensor:
    """A scalar zero connected to ``tensors``: backward still runs (and runs the same collectives).

    It sums an empty slice, so NaN or inf in padding cannot leak into it.
    """
    return sum(as_float(t).flatten()[:0].sum() for t in tensors)


def get_logits(
    image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor, local_loss: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled cosine logits against the gathered batch.

    image_features, text_features: ``[n, D]`` L2-normalised, pair ``i`` is row ``i`` of both.
    scale: scalar inverse temperature (see ``inverse_temperature``).
    Returns ``(logits_per_image, logits_per_text)``: ``[n, G]`` local rows against all ``G`` gathered
    columns when ``local_loss``, else the global ``[G, G]`` matrix and its transpose.
    """
    all_image = gather_with_grad(image_features)
    all_text = gather_with_grad(text_features)
    if local_loss:
        return scale * image_features @ all_text.T, scale * text_features @ all_image.T
    per_image = scale * all_image @ all_text.T
    return per_image, per_image.T


def get_ground_truth(num_local_rows: int, device: torch.device | str, local_loss: bool = True) -> torch.Tensor:
    """Column of each row's positive in the gathered batch: ``[n]`` (local) or ``[G]`` (global) longs."""
    rank, _ = rank_and_world()
    sizes = gather_sizes(num_local_rows, device)
    if local_loss:
        return torch.arange(num_local_rows, device=device) + sum(sizes[:rank])
    return torch.arange(sum(sizes), device=device)


def paired_infonce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    local_loss: bool = True,
    symmetric: bool = True,
    filter_threshold: float | None = None,
    filter_keys: torch.Tensor | None = None,
    filter_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """InfoNCE over the pairs ``(queries[i], keys[i])`` of the global batch: this rank's share and the count.

    queries, keys: ``[n, D]`` raw embeddings of this rank's pairs (already stripped of padding; ``n`` may
    differ between ranks and may be 0). Each query's candidates are all keys of the global batch (and, if
    ``symmetric``, each key's candidates are all queries); the loss is the mean over global pairs of the
    cross-entropy (the average of both directions when ``symmetric``).
    filter_threshold: drop from a row's denominator every candidate ``j`` whose **key** has cosine similarity
    ``> filter_threshold`` with the row's own key (CLOC's text filter: near-duplicate captions are not
    negatives). Computed without gradient; the positive always stays. ``None`` disables it.
    filter_keys: ``[n, E]`` vectors compared for the filter instead of the keys (e.g. another tower's).
    filter_ids: ``[n]`` int64 identities: the filter drops exactly the candidates with the row's own id
    (identical captions), whatever ``filter_threshold`` says.
    Returns ``(L_r, G)``: ``L_r`` averages over ranks to the global loss (0 with a graph when ``G == 0``).
    """
    q, k = normalize(queries), normalize(keys)
    scale = inverse_temperature(logit_scale)
    per_query, per_key = get_logits(q, k, scale, local_loss)
    labels = get_ground_truth(q.shape[0], q.device, local_loss)
    count = per_query.shape[1]
    if filter_threshold is not None or filter_ids is not None:
        with torch.no_grad():
            if filter_ids is not None:
                all_ids = gather_no_grad(filter_ids.long())
                drop = (filter_ids.long() if local_loss else all_ids)[:, None] == all_ids[None, :]
            else:
                fk = k if filter_keys is None else normalize(filter_keys.to(k.dtype))
                all_k = gather_no_grad(fk)
                row_k = fk if local_loss else all_k
                drop = row_k @ all_k.T > filter_threshold
            drop[torch.arange(labels.numel(), device=drop.device), labels] = False
        # The same pairs leave both directions: the candidate's caption is what duplicates the row's.
        per_query = per_query.masked_fill(drop, float("-inf"))
        per_key = per_key.masked_fill(drop, float("-inf"))
    total = F.cross_entropy(per_query, labels, reduction="sum")
    if symmetric:
        total = 0.5 * (total + F.cross_entropy(per_key, labels, reduction="sum"))
    if local_loss:
        return global_mean(total, count), count
    return total / max(count, 1), count


def clip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    local_loss: bool = True,
) -> dict[str, torch.Tensor]:
    """Symmetric CLIP InfoNCE over the global batch → ``{"clip": loss}``.

    image_embeds, text_embeds: ``[B, D]`` raw embeddings, row ``i`` of each is a positive pair.
    logit_scale: scalar, log of the inverse temperature (a Parameter): exponentiated and clamped at 100.
    local_loss: local rows against all gathered columns (cheaper) or the whole global matrix on every rank;
    both give the same loss on average and the same gradients after DDP/DeepSpeed averaging.
    """
    check_same_shape(image_embeds, text_embeds, "image_embeds", "text_embeds", "[B, D]")
    loss, _ = paired_infonce(image_embeds, text_embeds, logit_scale, local_loss=local_loss)
    return {"clip": loss}


def siglip_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """SigLIP pairwise sigmoid loss → ``{"siglip": loss}``.

    image_embeds, text_embeds: ``[B, D]`` raw embeddings. logit_scale: log inverse temperature (exp, clamp
    100); logit_bias: scalar added to every logit. Label ``+1`` on the diagonal, ``-1`` elsewhere;
    ``-log sigmoid(label * logit)`` summed over the texts of the global batch (gathered with gradient) and
    divided by the local batch size, as in the SigLIP paper (exactly: ``world * local sum / global B``).
    """
    check_same_shape(image_embeds, text_embeds, "image_embeds", "text_embeds", "[B, D]")
    image, text = normalize(image_embeds), normalize(text_embeds)
    logits = inverse_temperature(logit_scale) * image @ gather_with_grad(text).T + as_float(logit_bias)
    positive = get_ground_truth(image.shape[0], image.device)
    signs = -torch.ones_like(logits)
    signs[torch.arange(image.shape[0], device=image.device), positive] = 1.0
    total = -F.logsigmoid(signs * logits).sum()
    return {"siglip": global_mean(total, logits.shape[1])}
