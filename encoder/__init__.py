"""loclip.encoder: the promptable CLIP-style encoder as transformers models.

Importing this package registers the configs and models with ``AutoConfig``/``AutoModel`` so
``AutoModel.from_pretrained(dir)`` needs no ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoModel

from . import boxes
from .configuration import LoclipConfig, LoclipVisionConfig
from .modeling import LoclipModel, LoclipOutput, LoclipVisionModel, VisionEncoding
from .presets import tiny_config, vit_b16_config
from .roi_align import roi_align

AutoConfig.register(LoclipConfig.model_type, LoclipConfig, exist_ok=True)
AutoConfig.register(LoclipVisionConfig.model_type, LoclipVisionConfig, exist_ok=True)
AutoModel.register(LoclipConfig, LoclipModel, exist_ok=True)
AutoModel.register(LoclipVisionConfig, LoclipVisionModel, exist_ok=True)

__all__ = [
    "LoclipConfig",
    "LoclipModel",
    "LoclipOutput",
    "LoclipVisionConfig",
    "LoclipVisionModel",
    "VisionEncoding",
    "boxes",
    "roi_align",
    "tiny_config",
    "vit_b16_config",
]
