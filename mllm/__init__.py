"""loclip.mllm: a LLaVA-style model with the loclip encoder, ``<region>`` inputs and box-text outputs.

Importing it registers ``LoclipLlavaConfig`` with ``AutoConfig``, the models with ``AutoModel`` /
``AutoModelForImageTextToText`` and ``LoclipLlavaProcessor`` with ``AutoProcessor`` (no remote code).
Here: the model (``modeling``, ``configuration``), its processor, the conversation format and its record files
(``conversation``, ``records``), ``chat`` and the checked question it asks (``prompt.ChatPrompt``). Finetuning is
``loclip.finetune``, the MLLM's evaluation ``loclip.eval.mllm_referring``; this package imports neither, nor the
training runtime.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

import loclip.encoder  # noqa: F401  (registers the vision tower's config and model)

from .chat import AnswerStreamer, chat
from .configuration import LoclipLlavaConfig
from .modeling import LoclipLlavaForConditionalGeneration, LoclipLlavaModel, LoclipRegionProjector
from .processing import LoclipLlavaProcessor
from .prompt import ChatPrompt, Turn

AutoConfig.register(LoclipLlavaConfig.model_type, LoclipLlavaConfig, exist_ok=True)
AutoModel.register(LoclipLlavaConfig, LoclipLlavaModel, exist_ok=True)
AutoModelForImageTextToText.register(LoclipLlavaConfig, LoclipLlavaForConditionalGeneration, exist_ok=True)
AutoProcessor.register(LoclipLlavaConfig, LoclipLlavaProcessor, exist_ok=True)

__all__ = [
    "LoclipLlavaConfig",
    "LoclipLlavaForConditionalGeneration",
    "LoclipLlavaModel",
    "LoclipLlavaProcessor",
    "LoclipRegionProjector",
    "AnswerStreamer",
    "ChatPrompt",
    "Turn",
    "chat",
]
