"""loclip.label: VESL region pseudo-labelling (CLOC), with DreamLIP-style long and short captions.

captioner → noun phrases → open-vocabulary detector → new shards in the pretraining schema:

    from loclip.label import LabelConfig, OwlDetector, RulePhrases, label, load_captioner, shard_units
    units = shard_units("data/train-{000000..000009}.tar")
    label(units, LabelConfig("data/vesl"), load_captioner("/models/llava"), RulePhrases(),
          OwlDetector.from_pretrained("/models/owlv2"))

Every stage may be any callable of the matching protocol in ``stages``. ``loclip-label`` is the command line.
"""

from .captioner import ChatCaptioner, LoclipCaptioner, PlainCaptioner, load_captioner
from .detector import OwlDetector, nms
from .inputs import Unit, image_units, shard_units
from .phrases import RulePhrases, SpacyPhrases, clean_phrase, load_phrase_extractor, select_queries
from .pipeline import LabelConfig, Labeller, StageTimer, decode, label
from .stages import Captioner, Captions, Detection, Detector, PhraseExtractor
from .writer import merge_record

__all__ = [
    "Captioner",
    "Captions",
    "ChatCaptioner",
    "Detection",
    "Detector",
    "LabelConfig",
    "Labeller",
    "LoclipCaptioner",
    "OwlDetector",
    "PhraseExtractor",
    "PlainCaptioner",
    "RulePhrases",
    "SpacyPhrases",
    "StageTimer",
    "Unit",
    "clean_phrase",
    "decode",
    "image_units",
    "label",
    "load_captioner",
    "load_phrase_extractor",
    "merge_record",
    "nms",
    "select_queries",
    "shard_units",
]
