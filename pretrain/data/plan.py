"""The data order: which members each reader reads in each epoch, as a pure function of the seed.

Readers ("slots") are the ``world_size * max(1, num_workers)`` (rank, worker) pairs; slot
``rank * W + worker``. Each epoch the shards are permuted with ``(seed, epoch)``; with at least as many
shards as slots, slot ``s`` reads shards ``s, s + S, …`` of that permutation. With fewer shards than slots,
each shard is cut into ``P = ceil(S / N)`` parts (member ``i`` of its shuffled order goes to part
``i % P``) so that no reader idles: an idle DataLoader worker would make the batch order depend on timing.
Inside a shard the members are permuted with ``(seed, epoch, shard)`` — a shard-local shuffle — so a
reader's place is just ``Position(epoch, unit, member)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

_SHARD_ORDER, _MEMBER_ORDER = 11, 12  # stream tags, distinct from sampling's purposes


@dataclass(frozen=True)
class Position:
    """Where a reader stands: the next member to read is ``member`` of unit ``unit`` of its ``epoch`` list."""

    epoch: int = 0
    unit: int = 0
    member: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Position:
        try:
            values = {name: state[name] for name in ("epoch", "unit", "member")}
        except (KeyError, TypeError) as e:
            raise ValueError(f"a reader position needs epoch, unit and member; got {state!r}") from e
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
            raise ValueError(f"a reader position holds non-negative ints; got {state!r}")
        return cls(**values)


@dataclass(frozen=True)
class Unit:
    """Part ``part`` of ``parts`` of shard ``shard`` (an index into the shard list)."""

    shard: int
    part: int = 0
    parts: int = 1


class ShardPlan:
    """Units per slot and epoch, and the member order within a unit.

    Args:
        num_shards: N, the length of the shard (``ShardSpec``) list.
        num_slots: S, all readers over all ranks.
        seed: the data seed.
    """

    def __init__(self, num_shards: int, num_slots: int, seed: int) -> None:
        if num_shards < 1 or num_slots < 1:
            raise ValueError(f"ShardPlan needs at least one shard and one slot, got {num_shards} and {num_slots}")
        self.num_shards, self.num_slots, self.seed = num_shards, num_slots, seed
        self.parts = math.ceil(num_slots / num_shards)  # 1 unless there are fewer shards than readers

    def units(self, slot: int, epoch: int) -> list[Unit]:
        """Slot ``slot``'s units in ``epoch``, in reading order; slots get disjoint units covering all shards."""
        order = np.random.default_rng([self.seed, epoch, _SHARD_ORDER]).permutation(self.num_shards).tolist()
        every = [Unit(shard, part, self.parts) for shard in order for part in range(self.parts)]
        return every[slot :: self.num_slots]

    def member_order(self, unit: Unit, epoch: int, num_members: int) -> list[int]:
        """Indices (into the shard's stored order) of the members ``unit`` reads in ``epoch``, in reading order."""
        rng = np.random.default_rng([self.seed, epoch, unit.shard, _MEMBER_ORDER])
        return rng.permutation(num_members)[unit.part :: unit.parts].tolist()
