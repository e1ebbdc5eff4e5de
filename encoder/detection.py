"""Open-vocabulary detection from the encoder, in the shape of transformers' OWL-ViT.

For every phrase query:
1. **candidates**: the dense grounding head scores every patch cell for the phrase and regresses a box at each
   cell; the boxes of the ``num_candidates`` best cells are the phrase's candidates (a pooled ``BoxHead`` gives
   one box per phrase, its only candidate);
2. **score**: each candidate box prompts the Prompter like any region, and its region embedding is compared with
   the phrase's text embedding: ``score = (1 + cos) / 2`` in [0, 1]. The cell logits only rank cells within one
   phrase and image (the head learns them with a softmax over cells, so they say *where*, never *whether*);
   the region-text cosine is what CLOC's region loss trains across images and phrases, so one threshold means
   the same for every query;
3. **post-processing** (``detection_post.post_process_detections``, which the processors call): threshold,
   per-phrase NMS, boxes mapped to original-image pixels.

``window_candidates`` is the baseline for encoders without a box head: square sliding windows over the patch
grid, scored the same way by RoIAlign (or Prompter) region embeddings.

``LoclipForObjectDetection`` is a ``LoclipModel`` whose ``forward`` detects, so that
``pipeline("zero-shot-object-detection", model=DIR)`` loads an exported encoder (``loclip.encoder`` registers it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from .choices import REGION_METHODS, check_choice
from .detection_post import post_process_detections
from .modeling import LoclipModel, LoclipVisionModel, VisionEncoding

__all__ = ["LoclipDetectionOutput", "LoclipForObjectDetection", "post_process_detections"]

DEFAULT_CANDIDATES = 10  # cells per phrase whose boxes are scored; a scene rarely holds more objects per phrase
WINDOW_CELLS: tuple[int, ...] = (1, 2, 3, 4)  # sliding-window sides in patch cells, centred on every cell
WINDOW_KEEP = 20  # windows per phrase kept (best scores) before NMS, bounding its cost


@dataclass
class LoclipDetectionOutput(ModelOutput):
    """Detection candidates of ``Q`` phrase queries per image, ``K`` candidates each.

    scores: ``[B, Q, K]`` in [0, 1], ``(1 + cos) / 2`` of the candidate's region embedding and the phrase; 0 for a
        box with no area.
    pred_boxes: ``[B, Q, K, 4]`` normalised model-frame xyxy, clamped to the frame.
    cell_logits: ``[B, Q, K]`` the dense head's logit of each candidate's cell (``None`` for other proposals).
    text_embeds: ``[B, Q, D]`` the normalised phrase embeddings.
    """

    scores: torch.Tensor | None = None
    pred_boxes: torch.Tensor | None = None
    cell_logits: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None


def check_candidates(num_candidates: int) -> int:
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
        raise ValueError(f"num_candidates must be an int >= 1, got {num_candidates!r}")
    return num_candidates


def box_scores(
    vision: LoclipVisionModel,
    enc: VisionEncoding,
    boxes: torch.Tensor,
    phrase_embeds: torch.Tensor,
    method: str = "prompter",
) -> torch.Tensor:
    """``(1 + cos) / 2`` of each box's region embedding with its phrase: boxes ``[B, Q, K, 4]`` (clamped
    normalised xyxy), phrase_embeds ``[B, Q, D]`` → ``[B, Q, K]``; boxes with no area score 0."""
    check_choice("method", method, REGION_METHODS)
    b, q, k, _ = boxes.shape
    flat = boxes.reshape(b, q * k, 4)
    fn = vision.region_features if method == "prompter" else vision.roi_features
    regions = fn(enc, flat).reshape(b, q, k, -1)
    cos = F.cosine_similarity(regions.float(), phrase_embeds.float()[:, :, None], dim=-1)
    area = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    return torch.where(area, (1 + cos) / 2, torch.zeros_like(cos))


def head_candidates(
    vision: LoclipVisionModel,
    enc: VisionEncoding,
    phrase_embeds: torch.Tensor,
    num_candidates: int = DEFAULT_CANDIDATES,
) -> LoclipDetectionOutput:
    """The box head's candidates of phrase_embeds ``[B, Q, D]`` (module docstring, steps 1-2).

    ``num_candidates=1`` gives exactly ``ground()``'s box per phrase, scored."""
    check_candidates(num_candidates)
    out = vision.grounding(enc, phrase_embeds)
    if out.cell_logits is None:  # pooled head: one box per phrase
        boxes, logits = out.boxes[:, :, None], None
    else:
        k = min(num_candidates, out.cell_logits.shape[-1])
        # sorted topk: the first candidate is the argmax cell, ground()'s answer (ties: topk and argmax both
        # take the lowest index on CPU)
        logits, cells = out.cell_logits.topk(k, dim=-1)
        boxes = torch.gather(out.cell_boxes, 2, cells[..., None].expand(-1, -1, -1, 4)).clamp(0.0, 1.0)
    scores = box_scores(vision, enc, boxes, phrase_embeds)
    return LoclipDetectionOutput(scores, boxes, logits, F.normalize(phrase_embeds, dim=-1))


def window_boxes(grid: tuple[int, int], cells: tuple[int, ...] = WINDOW_CELLS) -> torch.Tensor:
    """Square windows of ``cells`` patch cells a side centred on every cell, clamped to the frame: ``[N * S, 4]``
    normalised xyxy (cell-major, then size)."""
    h, w = grid
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    centres = torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2)  # [N, 1, 2]
    half = torch.tensor([[c / w / 2, c / h / 2] for c in cells])[None]  # [1, S, 2]
    boxes = torch.cat([centres - half, centres + half], dim=-1).clamp(0.0, 1.0)
    return boxes.reshape(-1, 4)


def window_candidates(
    vision: LoclipVisionModel,
    enc: VisionEncoding,
    phrase_embeds: torch.Tensor,
    method: str = "roialign",
    keep: int = WINDOW_KEEP,
) -> LoclipDetectionOutput:
    """Baseline proposals: every ``window_boxes`` window, scored for every phrase by ``method``'s region
    embeddings (RoIAlign by default, so any encoder runs it); the ``keep`` best per phrase. ``[B, Q, D]`` →
    candidates ``[B, Q, keep]``."""
    check_choice("method", method, REGION_METHODS)
    b, q, _ = phrase_embeds.shape
    windows = window_boxes(enc.grid).to(enc.patch_tokens.device)
    fn = vision.region_features if method == "prompter" else vision.roi_features
    regions = F.normalize(fn(enc, windows[None].expand(b, -1, -1)).float(), dim=-1)  # [B, W, D]
    cos = torch.einsum("bwd,bqd->bqw", regions, F.normalize(phrase_embeds.float(), dim=-1))
    scores, best = ((1 + cos) / 2).topk(min(keep, windows.shape[0]), dim=-1)
    return LoclipDetectionOutput(scores, windows[best], None, F.normalize(phrase_embeds, dim=-1))


class LoclipForObjectDetection(LoclipModel):
    """A ``LoclipModel`` (same weights, same directory) whose ``forward`` detects: ``input_ids`` ``[B * Q, L]``
    holds ``Q`` phrase queries per image, image ``b``'s being rows ``b * Q .. b * Q + Q - 1`` (OWL-ViT's layout).
    Post-process with ``processor.post_process_grounded_object_detection``."""

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_candidates: int = DEFAULT_CANDIDATES,
        **kwargs,
    ) -> LoclipDetectionOutput:
        enc = self.vision_model.encode(pixel_values)
        b = enc.image_embeds.shape[0]
        if input_ids.shape[0] == 0 or input_ids.shape[0] % b:
            raise ValueError(
                f"input_ids must hold the same number (>= 1) of queries for each of the {b} images, "
                f"got {input_ids.shape[0]} rows"
            )
        phrases = self.get_text_features(input_ids, attention_mask)
        return head_candidates(self.vision_model, enc, phrases.reshape(b, -1, phrases.shape[-1]), num_candidates)
