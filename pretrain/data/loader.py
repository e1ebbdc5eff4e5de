"""``ResumableLoader`` and ``build_train_loader``: multi-worker batches with exact resume.

The DataLoader (``batch_size=None``) takes batches from workers 0..W-1 in turn, and each worker's batches
come in order, so after ``n`` delivered batches the next one is due from the reader role ``n % W``. The
loader records each role's position from the batches it delivers; a new iteration (after
``load_state_dict``, or after leaving a ``for`` loop) starts worker ``w`` in role ``(w + n) % W`` at that
role's position, which continues the exact batch sequence of an uninterrupted run.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Generator
from typing import Any

import torch.distributed as dist
from torch.utils.data import DataLoader

from loclip.shards.skips import SkipCounter

from .config import DataConfig
from .plan import Position
from .readers import read_members
from .sources import build_specs, fingerprint
from .stream import SKIPS_KEY, STATE_KEY, BatchStream

STATE_VERSION = 1
_MUST_MATCH = ("num_readers", "rank", "world_size", "batch_size", "seed", "shards")  # what fixes the batch order


class ResumableLoader:
    """An endless iterable of batches (layout: ``loclip.pretrain.data.collate``) that can save and restore
    its exact position.

    ``for batch in loader`` runs for ever (count steps); leaving the loop and iterating again continues where
    the last delivered batch left off. ``state_dict()``/``load_state_dict()`` save and restore that place;
    ``skip_counts()`` sums the skipped-data counts of all delivered batches.
    """

    def __init__(self, dataset: BatchStream) -> None:
        self.dataset = dataset
        config = dataset.config
        self._loader_kwargs: dict[str, Any] = {"num_workers": config.num_workers, "pin_memory": config.pin_memory}
        if config.num_workers > 0:
            self._loader_kwargs["prefetch_factor"] = config.prefetch_factor
        self._positions: list[dict[str, int] | None] = [None] * dataset.num_readers
        self._delivered = 0
        self._skips = SkipCounter()
        self._active: Generator[dict[str, Any], None, None] | None = None

    @property
    def batches_delivered(self) -> int:
        return self._delivered

    def __iter__(self) -> Generator[dict[str, Any], None, None]:
        self.close()  # one live iteration at a time: two would each claim the same next batches
        self._active = self._iterate()
        return self._active

    def _iterate(self) -> Generator[dict[str, Any], None, None]:
        readers = self.dataset.num_readers
        positions = [Position.from_dict(p) if p is not None else None for p in self._positions]
        self.dataset.resume_from(positions, self._delivered % readers)
        for batch in DataLoader(self.dataset, batch_size=None, **self._loader_kwargs):
            state, skips = batch.pop(STATE_KEY), batch.pop(SKIPS_KEY)
            role = state.pop("role")
            if role != self._delivered % readers:  # the round-robin order this class relies on did not hold
                expected = self._delivered % readers
                raise RuntimeError(f"batch {self._delivered} came from reader {role}, expected {expected}")
            self._positions[role] = state
            self._skips.update(skips)
            self._delivered += 1
            yield batch

    def close(self) -> None:
        """Stop the running iteration, if any, and its worker processes."""
        if self._active is not None:
            self._active.close()
            self._active = None

    def skip_counts(self) -> dict[str, int]:
        """``reason -> count`` of data skipped so far (see ``loclip.shards.skips``), resumed runs included."""
        return self._skips.as_dict()

    def state_dict(self) -> dict[str, Any]:
        """This rank's data position: per-reader positions, batches delivered, skip counts, and what must
        match on resume. Plain Python types (JSON-serialisable); save one per rank."""
        ds = self.dataset
        return {
            "version": STATE_VERSION,
            "batches": self._delivered,
            "positions": [dict(p) if p is not None else None for p in self._positions],
            "skip_counts": self._skips.as_dict(),
            "num_readers": ds.num_readers,
            "rank": ds.rank,
            "world_size": ds.world_size,
            "batch_size": ds.config.batch_size,
            "seed": ds.config.seed,
            "shards": fingerprint(ds.specs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from ``state_dict``); stops a running iteration. Raises ``ValueError`` if
        the state was saved with a different order-defining setup (workers, ranks, batch size, seed, shards)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a ResumableLoader state (version {STATE_VERSION}): {state!r:.200}")
        current = self.state_dict()
        for name in _MUST_MATCH:
            if state.get(name) != current[name]:
                raise ValueError(
                    f"cannot resume the data exactly: {name} was {state.get(name)!r} when saved, "
                    f"is {current[name]!r} now"
                )
        positions = state.get("positions")
        if not isinstance(positions, list) or len(positions) != self.dataset.num_readers:
            raise ValueError(f"state positions must be a list of {self.dataset.num_readers}, got {positions!r}")
        checked = [Position.from_dict(p).as_dict() if p is not None else None for p in positions]
        batches = state.get("batches")
        if not isinstance(batches, int) or batches < 0:
            raise ValueError(f"state batches must be a non-negative int, got {batches!r}")
        self.close()
        self._positions, self._delivered = checked, batches
        self._skips = SkipCounter(state.get("skip_counts") or {})

    def num_samples(self) -> int:
        """Samples in one epoch over all ranks (from ``sizes.json``/JSONL line counts, else by reading shards)."""
        return sum(s.size if s.size is not None else len(read_members(s, SkipCounter())) for s in self.dataset.specs)


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank and world size from ``torch.distributed`` when initialised (arguments, if given, must agree),
    else from the arguments (default 0 of 1)."""
    if dist.is_available() and dist.is_initialized():
        actual = (dist.get_rank(), dist.get_world_size())
        if (rank is not None and rank != actual[0]) or (world_size is not None and world_size != actual[1]):
            raise ValueError(
                f"rank/world_size {rank}/{world_size} disagree with torch.distributed's {actual[0]}/{actual[1]}"
            )
        return actual
    rank, world_size = (0 if rank is None else rank), (1 if world_size is None else world_size)
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
    return rank, world_size


def build_train_loader(
    config: DataConfig, processor: Any, rank: int | None = None, world_size: int | None = None
) -> ResumableLoader:
    """The training loader for this rank: ``config``'s sources, read in its seeded order, batched by
    ``processor`` (a ``LoclipProcessor``). ``config`` was checked when it was built (``DataConfig``); whether it
    names a source is checked here. Warns when there are fewer shards than readers (then shards are split by
    member, and every reader reads whole shards to keep its part)."""
    if not isinstance(config, DataConfig):
        raise TypeError(f"config must be a DataConfig, got {type(config).__name__}")
    image_size = getattr(getattr(processor, "image_processor", None), "image_size", None)
    if image_size is None or not hasattr(processor, "tokenizer"):
        raise TypeError(
            f"processor must be a LoclipProcessor (image processor + tokenizer), got {type(processor).__name__}"
        )
    if config.image_size != image_size:
        raise ValueError(f"DataConfig.image_size is {config.image_size} but the processor letterboxes to {image_size}")
    rank, world_size = resolve_rank(rank, world_size)
    specs = build_specs(config)
    readers = world_size * max(1, config.num_workers)
    if len(specs) < readers:
        warnings.warn(
            f"{len(specs)} shard(s) for {readers} readers ({world_size} rank(s) x {max(1, config.num_workers)}): "
            "each shard is split by member and read in full by several readers; more shards read less",
            stacklevel=2,
        )
    # a private copy (not rebuilt, so not checked again): a recipe edited after this call must not change what the
    # workers read
    return ResumableLoader(BatchStream(specs, copy.copy(config), processor, rank, world_size))
