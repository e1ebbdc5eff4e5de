"""The loclip encoder as transformers models.

``LoclipVisionModel``: a CLIP/SigLIP vision trunk + the CLOC Prompter, box head and RoIAlign baseline.
Usable alone as an MLLM vision tower (its ``forward`` is the trunk's, hidden states included).
``LoclipModel``: the vision model + a CLIP/SigLIP text tower + the contrastive temperature.

Image-level calls run the trunk only; the prompter runs only for region and grounding calls.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .boxes import to_bins, validate_normalized
from .choices import REGION_METHODS, check_choice
from .configuration import LoclipConfig, LoclipVisionConfig
from .prompter import BoxHead, DenseBoxHead, Prompter, PrompterMemory, SinusoidalPointEncoding
from .roi_align import roi_align
from .trunks import DUAL_TOWERS, TEXT_TOWERS, VISION_TRUNKS


@dataclass
class VisionEncoding:
    """One trunk pass, reused by every head.

    image_embeds: ``[B, D]`` image embeddings (not normalised).
    patch_tokens: ``[B, N, W]`` final trunk tokens of the patches, row-major over ``grid``.
    grid: ``(h, w)`` patches per side.
    trunk_output: the trunk's own output (hidden states when asked).
    cache: per-encoding results of the heads (the prompter's patch keys/values), filled on first use so that
    region and phrase prompts of the same pass share them. An encoding belongs to one forward pass.
    """

    image_embeds: torch.Tensor
    patch_tokens: torch.Tensor
    grid: tuple[int, int]
    trunk_output: BaseModelOutputWithPooling
    cache: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass
class GroundingOutput:
    """Phrase-prompted pass for ``P`` phrases per image.

    boxes: ``[B, P, 4]`` the predicted normalised xyxy box of each phrase, clamped to the image.
    region_embeds: ``[B, P, D]`` the phrase-prompted region embeddings.
    cell_logits: ``[B, P, N]`` each cell's score for the phrase (dense head only, else ``None``).
    cell_boxes: ``[B, P, N, 4]`` each cell's box, unclamped (dense head only, else ``None``).
    raw_boxes: ``[B, P, 4]`` ``boxes`` before clamping: what the losses compare (a clamp has no gradient
    past the edge, so it would push the size the wrong way).
    grid: ``(h, w)`` the patch grid of the pass, on which the cells lie (``N = h * w``); the dense head's loss
    reads it, so the output alone is what ``box_head.loss`` needs.
    """

    boxes: torch.Tensor
    region_embeds: torch.Tensor
    cell_logits: torch.Tensor | None = None
    cell_boxes: torch.Tensor | None = None
    raw_boxes: torch.Tensor | None = None
    grid: tuple[int, int] | None = None


def found_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Which predicted boxes show something: ``[..., 4]`` normalised xyxy → ``[...]`` bool.

    A box found nothing when it has no area at the resolution of box text (x1 = x2 or y1 = y2 in the MLLM's
    0–999 integers, under 1/999 of the image side): that is what the grounding heads draw for a phrase that
    names nothing they can see, and drawn it would be an invisible 0-area box. The encoder's ``ground``, the
    demo and ``chat`` report such a box as not found. (The heads give no calibrated presence score: every
    grounding phrase they learnt from was in its image.)
    """
    bins = to_bins(boxes.detach().float())
    return (bins[..., 2] > bins[..., 0]) & (bins[..., 3] > bins[..., 1])


@dataclass
class LoclipOutput(ModelOutput):
    """Output of ``LoclipModel.forward``; embeddings are L2-normalised, logits scaled by the temperature."""

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    region_embeds: torch.Tensor | None = None


def _check_pixels(pixel_values: torch.Tensor, image_size: int) -> None:
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
    if not pixel_values.is_floating_point():
        raise TypeError(f"pixel_values must be floating point, got dtype {pixel_values.dtype}")
    if pixel_values.dim() != 4 or pixel_values.shape[-2:] != (image_size, image_size):
        raise ValueError(
            f"pixel_values must be [B, C, {image_size}, {image_size}], got shape {tuple(pixel_values.shape)}"
        )


def _check_region_inputs(
    boxes: torch.Tensor, box_mask: torch.Tensor | None, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``[B, R, 4]`` boxes and ``[B, R]`` mask; padded slots are zeroed so they can hold anything."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"boxes must be a torch.Tensor [B, R, 4], got {type(boxes).__name__}")
    if boxes.dim() != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != batch:
        raise ValueError(f"boxes must be [B={batch}, R, 4] normalised xyxy, got shape {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be floating point normalised xyxy, got dtype {boxes.dtype}")
    if box_mask is None:
        box_mask = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
    elif box_mask.shape != boxes.shape[:2]:
        raise ValueError(f"box_mask must be [B, R]={tuple(boxes.shape[:2])}, got shape {tuple(box_mask.shape)}")
    box_mask = box_mask.to(torch.bool)
    boxes = torch.where(box_mask[..., None], boxes, torch.zeros_like(boxes))
    validate_normalized(boxes.detach(), "boxes")
    return boxes, box_mask


class LoclipPreTrainedModel(PreTrainedModel):
    config_class = LoclipConfig
    base_model_prefix = "loclip"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = ["CLIPEncoderLayer", "SiglipEncoderLayer", "Prompter"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The trunks are PreTrainedModels and initialise themselves; this covers loclip's own modules.
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SinusoidalPointEncoding):
            # non-persistent buffer: rebuilt here because from_pretrained creates modules on the meta device
            init.copy_(module.freqs, module.make_freqs(module.freqs.numel(), module.max_frequency))
        elif isinstance(module, Prompter):
            init.normal_(module.corner_embed, std=std)
            init.normal_(module.phrase_embed, std=std)
            init.ones_(module.locality)
        elif isinstance(module, DenseBoxHead):
            init.constant_(module.size_bias, DenseBoxHead.SIZE_BIAS)
        elif isinstance(module, LoclipModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
            if module.logit_bias is not None:
                init.constant_(module.logit_bias, self.config.logit_bias_init_value)


class LoclipVisionModel(LoclipPreTrainedModel):
    """Vision trunk + Prompter + box head. ``forward`` is the trunk's (for Llava-style use)."""

    config_class = LoclipVisionConfig
    config: LoclipVisionConfig
    base_model_prefix = "vision_model"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # Loading the vision half from a full LoclipModel directory skips the text side quietly.
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^text_projection\.", r"^logit_"]

    def __init__(self, config: LoclipVisionConfig) -> None:
        super().__init__(config)
        self.spec = VISION_TRUNKS[config.trunk_config.model_type]
        self.trunk = self.spec.model_class._from_config(config.trunk_config)
        width = config.hidden_size
        self.visual_projection = nn.Linear(width, config.projection_dim, bias=False) if self.spec.projects else None
        self.prompter = Prompter(
            width=width,
            num_heads=config.prompter_num_heads or config.num_attention_heads,
            mlp_ratio=config.prompter_mlp_ratio,
            text_embed_dim=config.text_embed_dim,
            max_frequency=config.pos_max_frequency,
            eps=config.trunk_config.layer_norm_eps,
        )
        self.region_projection = nn.Linear(width, config.projection_dim, bias=False)
        head = DenseBoxHead if config.grounding_head == "dense" else BoxHead
        self.box_head = head(width, config.box_head_hidden_size or width)
        self.post_init()

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    def get_input_embeddings(self) -> nn.Module:
        return self.trunk.get_input_embeddings()

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """The trunk's forward, unchanged: ``last_hidden_state``, ``pooler_output``, ``hidden_states``."""
        return self.trunk(pixel_values=pixel_values, **kwargs)

    # ----------------------------------------------------------------------------------------------
    def encode(self, pixel_values: torch.Tensor, **trunk_kwargs) -> VisionEncoding:
        """One trunk pass → image embeddings and patch tokens (shapes in ``VisionEncoding``)."""
        _check_pixels(pixel_values, self.config.image_size)
        out = self.trunk(pixel_values=pixel_values.to(self.dtype), return_dict=True, **trunk_kwargs)
        pooled = out.pooler_output
        image_embeds = self.visual_projection(pooled) if self.visual_projection is not None else pooled
        tokens = out.last_hidden_state[:, 1:] if self.spec.has_cls else out.last_hidden_state
        g = self.config.grid_size
        return VisionEncoding(image_embeds, tokens, (g, g), out)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values ``[B, 3, S, S]`` → image embeddings ``[B, D]`` (trunk + projection only)."""
        return self.encode(pixel_values).image_embeds

    def dense_features(self, enc: VisionEncoding) -> torch.Tensor:
        """Patch tokens mapped into the embedding space like the pooled token: ``[B, h, w, D]``."""
        tokens = enc.patch_tokens
        if self.spec.patch_norm is not None:
            tokens = getattr(self.trunk, self.spec.patch_norm)(tokens)
        if self.visual_projection is not None:
            tokens = self.visual_projection(tokens)
        h, w = enc.grid
        return tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])

    def get_patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Dense patch embeddings in the shared space, ``[B, h, w, D]`` (for segmentation-style use)."""
        return self.dense_features(self.encode(pixel_values))

    def prompter_memory(self, enc: VisionEncoding) -> PrompterMemory:
        """The prompter's patch side for ``enc`` (context, keys, values): computed once, kept in ``enc.cache``."""
        memory = enc.cache.get("prompter")
        if memory is None:
            memory = enc.cache["prompter"] = self.prompter.memory(enc.patch_tokens, enc.grid)
        return memory

    def region_features(
        self, enc: VisionEncoding, boxes: torch.Tensor, box_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prompter region embeddings from an encoding. boxes ``[B, R, 4]`` → ``[B, R, D]`` (padding → 0)."""
        boxes, box_mask = _check_region_inputs(boxes, box_mask, enc.patch_tokens.shape[0])
        if boxes.shape[1] == 0:
            return enc.image_embeds.new_zeros(boxes.shape[0], 0, self.config.projection_dim)
        prompts = self.prompter.embed_boxes(boxes.to(enc.patch_tokens.dtype))
        prior = self.prompter.box_prior(boxes.to(enc.patch_tokens.dtype), enc.grid)
        pooled = self.prompter(enc.patch_tokens, enc.grid, prompts, prior, memory=self.prompter_memory(enc))
        return self.region_projection(pooled) * box_mask[..., None]

    def roi_features(
        self, enc: VisionEncoding, boxes: torch.Tensor, box_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Baseline region embeddings: RoIAlign over ``dense_features``, mean over bins. ``[B, R, D]``."""
        boxes, box_mask = _check_region_inputs(boxes, box_mask, enc.patch_tokens.shape[0])
        b, r = boxes.shape[:2]
        dense = self.dense_features(enc).permute(0, 3, 1, 2)  # [B, D, h, w]
        h, w = enc.grid
        # Boxes are normalised, the map is h x w: scale x and y separately (square grid here, but be exact).
        scaled = boxes.reshape(-1, 4) * boxes.new_tensor([w, h, w, h])
        batch_index = torch.arange(b, device=boxes.device).repeat_interleave(r)
        pooled = roi_align(dense, scaled, batch_index, self.config.roi_output_size, 1.0, self.config.roi_sampling_ratio)
        return pooled.mean(dim=(2, 3)).reshape(b, r, dense.shape[1]) * box_mask[..., None]

    def get_region_features(
        self,
        pixel_values: torch.Tensor,
        boxes: torch.Tensor,
        box_mask: torch.Tensor | None = None,
        method: str = "prompter",
    ) -> torch.Tensor:
        """Region embeddings for many boxes per image in one call.

        Args:
            pixel_values: ``[B, 3, S, S]``.
            boxes: ``[B, R, 4]`` normalised model-frame xyxy.
            box_mask: ``[B, R]`` bool, False for padding (default all True).
            method: ``"prompter"`` (CLOC) or ``"roialign"`` (baseline).

        Returns:
            ``[B, R, D]``; padded slots are zero.
        """
        check_choice("method", method, REGION_METHODS)
        enc = self.encode(pixel_values)
        fn = self.region_features if method == "prompter" else self.roi_features
        return fn(enc, boxes, box_mask)

    def grounding(self, enc: VisionEncoding, phrase_embeds: torch.Tensor) -> GroundingOutput:
        """Phrase-prompted pass: phrase_embeds ``[B, P, E]`` → boxes, region embeddings (and cell outputs)."""
        if phrase_embeds.dim() != 3 or phrase_embeds.shape[0] != enc.patch_tokens.shape[0]:
            raise ValueError(f"phrase_embeds must be [B, P, E], got shape {tuple(phrase_embeds.shape)}")
        prompts = self.prompter.embed_phrases(phrase_embeds.to(enc.patch_tokens.dtype))
        memory = self.prompter_memory(enc)
        pooled = self.prompter(enc.patch_tokens, enc.grid, prompts, memory=memory)
        region_embeds = self.region_projection(pooled)
        if isinstance(self.box_head, BoxHead):
            raw = self.box_head(pooled)
            return GroundingOutput(raw.clamp(0.0, 1.0), region_embeds, raw_boxes=raw, grid=enc.grid)
        logits, cell_boxes = self.box_head(memory.context, pooled, enc.grid)
        raw = DenseBoxHead.select(logits, cell_boxes)
        return GroundingOutput(raw.clamp(0.0, 1.0), region_embeds, logits, cell_boxes, raw, enc.grid)


class LoclipModel(LoclipPreTrainedModel):
    """Dual encoder with promptable region embeddings (CLOC) — see the module docstring."""

    config: LoclipConfig

    def __init__(self, config: LoclipConfig) -> None:
        super().__init__(config)
        self.vision_model = LoclipVisionModel._from_config(config.vision_config)
        text_spec = TEXT_TOWERS[config.text_config.model_type]
        self.text_model = text_spec.model_class._from_config(config.text_config)
        self.text_projection = (
            nn.Linear(config.text_config.hidden_size, config.projection_dim, bias=False) if text_spec.projects else None
        )
        # Shape [1], not a 0-dim scalar: DeepSpeed's parameter broadcast views tensors as bytes, which 0-dim can't.
        self.logit_scale = nn.Parameter(torch.tensor([float(config.logit_scale_init_value)]))
        bias = config.logit_bias_init_value
        self.logit_bias = nn.Parameter(torch.tensor([float(bias)])) if bias is not None else None
        self.post_init()

    # ------------------------------------------------------------------------------------- features
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values ``[B, 3, S, S]`` → ``[B, D]`` (not normalised), the trunk's cost only."""
        return self.vision_model.get_image_features(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids ``[B, L]`` (+ mask) → ``[B, D]`` text embeddings (not normalised)."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be an integer tensor [B, L], got {shape}")
        positions = self.config.text_config.max_position_embeddings
        if input_ids.shape[1] > positions:
            raise ValueError(
                f"input_ids holds {input_ids.shape[1]} tokens but the text tower reads at most {positions}: "
                "truncate the text (a phrase or label this long cannot be embedded whole)"
            )
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
            )
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).pooler_output
        return self.text_projection(pooled) if self.text_projection is not None else pooled

    def get_patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, h, w, D]`` dense patch embeddings in the shared space."""
        return self.vision_model.get_patch_features(pixel_values)

    def get_region_features(
        self,
        pixel_values: torch.Tensor,
        boxes: torch.Tensor,
        box_mask: torch.Tensor | None = None,
        method: str = "prompter",
    ) -> torch.Tensor:
        """``[B, R, 4]`` normalised xyxy boxes → ``[B, R, D]`` region embeddings (see LoclipVisionModel)."""
        return self.vision_model.get_region_features(pixel_values, boxes, box_mask, method)

    def ground(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_found: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One phrase per image → its predicted box. ``[B, 3, S, S]``, ``[B, L]`` → ``[B, 4]`` normalised xyxy.

        With ``return_found``: ``(boxes [B, 4], found [B] bool)``, False where the box has no area, i.e. the
        phrase was not found (``found_boxes``)."""
        enc = self.vision_model.encode(pixel_values)
        phrases = self.get_text_features(input_ids, attention_mask)
        if phrases.shape[0] != enc.image_embeds.shape[0]:
            raise ValueError(
                f"ground needs one phrase per image: {phrases.shape[0]} phrases, {enc.image_embeds.shape[0]} images"
            )
        boxes = self.vision_model.grounding(enc, phrases[:, None]).boxes[:, 0]
        return (boxes, found_boxes(boxes)) if return_found else boxes

    # ------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
        return_loss: bool = False,
    ) -> LoclipOutput:
        """Image-text logits like ``CLIPModel`` (+ region embeddings when ``boxes`` are given).

        ``return_loss`` gives the plain symmetric InfoNCE of this batch; the pretraining losses
        (DreamLIP, CLOC, distributed gathering) live in ``loclip.pretrain``.
        """
        enc = self.vision_model.encode(pixel_values)
        image_embeds = F.normalize(enc.image_embeds, dim=-1)
        text_embeds = F.normalize(self.get_text_features(input_ids, attention_mask), dim=-1)
        logits_per_text = text_embeds @ image_embeds.t() * self.logit_scale.exp()
        if self.logit_bias is not None:
            logits_per_text = logits_per_text + self.logit_bias
        region_embeds = None
        if boxes is not None:
            region_embeds = F.normalize(self.vision_model.region_features(enc, boxes, box_mask), dim=-1)
        loss = None
        if return_loss:
            target = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
            loss = (F.cross_entropy(logits_per_text, target) + F.cross_entropy(logits_per_text.t(), target)) / 2
        return LoclipOutput(
            loss=loss,
            logits_per_image=logits_per_text.t(),
            logits_per_text=logits_per_text,
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            region_embeds=region_embeds,
        )

    # ------------------------------------------------------------------------------------- loading
    @classmethod
    def from_clip(cls, path: str | Path, **config_overrides) -> "LoclipModel":
        """Start from a transformers ``CLIPModel``/``SiglipModel`` checkpoint directory.

        Towers, projections and temperature are copied; the prompter, region projection and box head are
        new. Image and text embeddings then equal the checkpoint's ``get_image_features``/
        ``get_text_features``. ``config_overrides`` go to ``LoclipVisionConfig`` (e.g. prompter sizes).
        """
        src_config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        if src_config.model_type not in DUAL_TOWERS:
            raise ValueError(
                f"from_clip needs a checkpoint of type {sorted(DUAL_TOWERS)}, got {src_config.model_type!r} at {path}"
            )
        src = AutoModel.from_pretrained(path, dtype=torch.float32, trust_remote_code=False)
        vision, text = src_config.vision_config, src_config.text_config
        projects = VISION_TRUNKS[vision.model_type].projects
        proj_dim = src_config.projection_dim if projects else vision.hidden_size
        config = LoclipConfig(
            vision_config=LoclipVisionConfig(trunk_config=vision, projection_dim=proj_dim, **config_overrides),
            text_config=text,
            projection_dim=proj_dim,
            logit_scale_init_value=float(src.logit_scale.detach().reshape(())),
            logit_bias_init_value=float(src.logit_bias.detach().reshape(())) if hasattr(src, "logit_bias") else None,
        )
        model = cls(config)
        model.vision_model.trunk.load_state_dict(src.vision_model.state_dict())
        model.text_model.load_state_dict(src.text_model.state_dict())
        if model.vision_model.visual_projection is not None:
            model.vision_model.visual_projection.load_state_dict(src.visual_projection.state_dict())
        if model.text_projection is not None:
            model.text_projection.load_state_dict(src.text_projection.state_dict())
        return model
