"""The resumable multi-worker loader: exact resume, rank disjointness, fewer shards than readers."""

from __future__ import annotations

import json

import pytest
import torch

from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor
from loclip.pretrain.data import DataConfig, ResumableLoader, ShardPlan, build_specs, build_train_loader, read_members
from loclip.shards.skips import SkipCounter
from loclip.synth import SceneConfig, build_tokenizer, write_split

SCENES, SHARD_SIZE, BATCH = 40, 10, 4  # 4 shards; with 2 workers each reads 2 shards = 5 batches per epoch


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("loader")
    write_split(out, "train", SCENES, seed=3, config=SceneConfig(image_size=32), shard_size=SHARD_SIZE)
    return str(out / "train" / "shard-{000000..000003}.tar")


@pytest.fixture(scope="module")
def processor() -> LoclipProcessor:
    return LoclipProcessor(LoclipImageProcessor(image_size=16), build_tokenizer())


def make(
    shards: str, processor: LoclipProcessor, workers: int, rank: int = 0, world_size: int = 1, **overrides: object
) -> ResumableLoader:
    fields = dict(
        train_shards=shards,
        image_size=16,
        max_text_length=16,
        batch_size=BATCH,
        num_workers=workers,
        num_subcaptions=2,
        num_regions=2,
        seed=5,
    )
    config = DataConfig(**{**fields, **overrides})  # type: ignore[arg-type]
    return build_train_loader(config, processor, rank, world_size)


def take(loader: ResumableLoader, n: int) -> list[dict]:
    it = iter(loader)
    batches = [next(it) for _ in range(n)]
    loader.close()
    return batches


def same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x["keys"] == y["keys"] and all(torch.equal(x[k], y[k]) for k in x if k != "keys") for x, y in zip(a, b)
    )


@pytest.mark.parametrize("workers, cuts", [(2, (1, 4, 7, 12)), (0, (3, 11))])
def test_resume_continues_exactly(shards: str, processor: LoclipProcessor, workers: int, cuts: tuple[int, ...]) -> None:
    """Take n batches, save, resume in a NEW loader: the next batches equal an uninterrupted run's — for n
    not a multiple of the workers and past an epoch end (10 batches per epoch here)."""
    after = 4
    reference = take(make(shards, processor, workers), max(cuts) + after)
    epoch_keys = sorted(k for b in reference[: SCENES // BATCH] for k in b["keys"])
    assert epoch_keys == sorted(set(epoch_keys)) and len(epoch_keys) == SCENES  # one epoch: every scene once
    for n in cuts:
        first = make(shards, processor, workers)
        assert same(take(first, n), reference[:n])
        state = json.loads(json.dumps(first.state_dict()))  # it must survive a JSON checkpoint
        resumed = make(shards, processor, workers)
        resumed.load_state_dict(state)
        assert resumed.batches_delivered == n
        assert same(take(resumed, after), reference[n : n + after]), f"resume after {n} batches"


def test_iterating_again_continues(shards: str, processor: LoclipProcessor) -> None:
    reference = take(make(shards, processor, 2), 5)
    loader = make(shards, processor, 2)
    got = take(loader, 3) + take(loader, 2)  # leaving the loop and iterating again picks up where it stopped
    assert same(got, reference)


def test_resume_refuses_a_different_order(shards: str, processor: LoclipProcessor) -> None:
    loader = make(shards, processor, 2)
    take(loader, 1)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="num_readers"):
        make(shards, processor, 0).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        make(shards, processor, 2, seed=6).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        make(shards, processor, 2, batch_size=3).load_state_dict(state)


def test_ranks_read_disjoint_samples_covering_the_epoch(shards: str, processor: LoclipProcessor) -> None:
    keys = []
    for rank in (0, 1):
        loader = make(shards, processor, 1, rank=rank, world_size=2, batch_size=5)
        keys.append({k for batch in take(loader, 4) for k in batch["keys"]})  # 2 shards of 10 per rank
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == SCENES


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on a 2-core CI machine
def test_fewer_shards_than_readers_splits_shards(shards: str, processor: LoclipProcessor) -> None:
    specs = build_specs(DataConfig(train_shards=shards))
    plan = ShardPlan(len(specs), num_slots=6, seed=0)  # 2 ranks x 3 workers for 4 shards: each shard in 2 parts
    members = [read_members(spec, SkipCounter()) for spec in specs]
    for epoch in (0, 1):
        per_slot = [
            [members[u.shard][i].key for u in plan.units(slot, epoch) for i in plan.member_order(u, epoch, 10)]
            for slot in range(6)
        ]
        every = [k for keys in per_slot for k in keys]
        assert all(per_slot) and len(every) == len(set(every)) == SCENES
    with pytest.warns(UserWarning, match="split by member"):
        loader = make(shards, processor, 3, rank=1, world_size=2)
    assert len(take(loader, 6)) == 6  # no reader idles, so none stalls the round robin


def test_a_reader_without_samples_fails_clearly(shards: str, processor: LoclipProcessor) -> None:
    one = shards.replace("{000000..000003}", "000000")
    with pytest.warns(UserWarning):
        loader = make(one, processor, 0, rank=11, world_size=12, batch_size=1)  # 12 parts of a 10-scene shard
    with pytest.raises(RuntimeError, match="no usable sample"):
        take(loader, 1)
