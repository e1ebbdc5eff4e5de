"""loclip.pretrain.data: the pretraining data pipeline.

Webdataset shards (paths, brace patterns, ``pipe:``/URLs) and JSONL + image folders → validated samples
(bad ones skipped and counted) → DreamLIP sub-captions and CLOC regions drawn per step → fixed-shape
batches through ``LoclipProcessor`` → a multi-worker loader that resumes exactly.

    loader = build_train_loader(DataConfig(train_shards="shards/train-{000000..000099}.tar"), processor)
    for step, batch in zip(range(num_steps), loader): ...
    state = loader.state_dict(); loader.load_state_dict(state); loader.skip_counts()
"""

from loclip.core.sentences import split_sentences
from loclip.shards.skips import SkipCounter

from .collate import BATCH_KEYS, collate
from .config import DataConfig
from .loader import ResumableLoader, build_train_loader, resolve_rank
from .plan import Position, ShardPlan, Unit
from .readers import RawSample, read_members
from .sample import Region, Sample, decode_sample
from .sampling import TrainItem, choose, prepare, sample_rng, subcaption_pool
from .sources import ShardSpec, build_specs, expand_shard_urls
from .stream import BatchStream

__all__ = [
    "BATCH_KEYS",
    "BatchStream",
    "DataConfig",
    "Position",
    "RawSample",
    "Region",
    "ResumableLoader",
    "Sample",
    "ShardPlan",
    "ShardSpec",
    "SkipCounter",
    "TrainItem",
    "Unit",
    "build_specs",
    "build_train_loader",
    "choose",
    "collate",
    "decode_sample",
    "expand_shard_urls",
    "prepare",
    "read_members",
    "resolve_rank",
    "sample_rng",
    "split_sentences",
    "subcaption_pool",
]
