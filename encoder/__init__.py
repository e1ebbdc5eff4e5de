"""loclip.encoder: the promptable CLIP-style encoder as transformers models.

Importing this package registers the configs and models with ``AutoConfig``/``AutoModel`` (and the zero-shot
image-classification and object-detection Auto classes, for transformers' pipelines) so
``AutoModel.from_pretrained(dir)`` needs no ``trust_remote_code``.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForZeroShotImageClassification,
    AutoModelForZeroShotObjectDetection,
    AutoProcessor,
)

from . import boxes
from .configuration import LoclipConfig, LoclipVisionConfig
from .detection import LoclipDetectionOutput, LoclipForObjectDetection
from .image_processing import LoclipImageProcessor
from .modeling import LoclipModel, LoclipOutput, LoclipVisionModel, VisionEncoding
from .presets import tiny_config, vit_b16_config
from .processing import LoclipProcessor
from .roi_align import roi_align

AutoConfig.register(LoclipConfig.model_type, LoclipConfig, exist_ok=True)
AutoConfig.register(LoclipVisionConfig.model_type, LoclipVisionConfig, exist_ok=True)
AutoModel.register(LoclipConfig, LoclipModel, exist_ok=True)
AutoModel.register(LoclipVisionConfig, LoclipVisionModel, exist_ok=True)
# transformers' pipelines: pipeline("zero-shot-image-classification" / "zero-shot-object-detection", model=DIR)
AutoModelForZeroShotImageClassification.register(LoclipConfig, LoclipModel, exist_ok=True)
AutoModelForZeroShotObjectDetection.register(LoclipConfig, LoclipForObjectDetection, exist_ok=True)
# Both backends map to our PIL implementation, so a machine with torchvision does not warn on every load.
_image_processors = {"pil": LoclipImageProcessor, "torchvision": LoclipImageProcessor}
for _config in (LoclipConfig, LoclipVisionConfig):
    AutoImageProcessor.register(_config, image_processor_classes=_image_processors, exist_ok=True)
    AutoProcessor.register(_config, LoclipProcessor, exist_ok=True)

__all__ = [
    "LoclipConfig",
    "LoclipDetectionOutput",
    "LoclipForObjectDetection",
    "LoclipImageProcessor",
    "LoclipModel",
    "LoclipOutput",
    "LoclipProcessor",
    "LoclipVisionConfig",
    "LoclipVisionModel",
    "VisionEncoding",
    "boxes",
    "roi_align",
    "tiny_config",
    "vit_b16_config",
]
