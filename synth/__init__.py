"""loclip.synth: the synthetic world, the project's built-in dataset and yardstick.

Procedural scenes (shapes × colours × sizes on noisy backgrounds) with captions, tight region boxes
and phrases, referring/grounding conversations, a held-out composition split, and a tokenizer for
its language. See ``docs/synthetic_world.md``.
"""

from .config import SceneConfig
from .language import SceneText, Turn
from .objects import SceneObject
from .reader import SceneRecord, label_map, read_conversations, read_split, shard_paths
from .records import conversation_record, shard_record
from .scene import Scene, generate_scene
from .shards import SplitSummary, write_split
from .tokenizer import build_tokenizer
from .world import BACKGROUNDS, COLOURS, NOVEL_PAIRS, SEEN_PAIRS, SHAPES, SIZES, SPLITS

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "NOVEL_PAIRS",
    "SEEN_PAIRS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "SceneRecord",
    "SceneText",
    "SplitSummary",
    "Turn",
    "build_tokenizer",
    "conversation_record",
    "generate_scene",
    "label_map",
    "read_conversations",
    "read_split",
    "shard_paths",
    "shard_record",
    "write_split",
]
