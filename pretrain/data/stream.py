"""``BatchStream``: an ``IterableDataset`` that reads, decodes, draws and collates whole batches per worker.

Each worker plays one reader role of its rank and walks its ``ShardPlan`` units epoch after epoch, for
ever. Every batch carries, under ``STATE_KEY``, the reader's role and its ``Position`` after that batch, and
under ``SKIPS_KEY`` the skip counts added since its previous batch; ``ResumableLoader`` strips both.
Batches run across unit and epoch ends (there are no partial batches); each sample's draws use the epoch
it was read in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from loclip.shards.skips import SkipCounter

from .collate import collate
from .config import DataConfig
from .plan import Position, ShardPlan
from .readers import read_members
from .sample import decode_sample
from .sampling import TrainItem, prepare
from .sources import ShardSpec

STATE_KEY, SKIPS_KEY = "_reader_state", "_skip_delta"


class BatchStream(IterableDataset):
    """Infinite stream of collated batches for one rank (see ``collate`` for the batch layout).

    Args:
        specs: every shard of the dataset (all ranks'), in a fixed order.
        config: the data recipe; ``num_workers`` readers per rank (one if 0).
        processor: a ``LoclipProcessor`` (tokenizer + image processor).
        rank, world_size: this rank and the number of ranks.
    """

    def __init__(
        self, specs: Sequence[ShardSpec], config: DataConfig, processor: Any, rank: int, world_size: int
    ) -> None:
        super().__init__()
        self.specs, self.config, self.processor = list(specs), config, processor
        self.rank, self.world_size = rank, world_size
        self.num_readers = max(1, config.num_workers)
        self.plan = ShardPlan(len(self.specs), world_size * self.num_readers, config.seed)
        self.start_positions: list[Position | None] = [None] * self.num_readers
        self.role_offset = 0

    def resume_from(self, positions: Sequence[Position | None], role_offset: int) -> None:
        """Set where each role starts (``None``: the beginning) and that worker ``w`` plays role
        ``(w + role_offset) % num_readers``. Takes effect for iterators created afterwards."""
        if len(positions) != self.num_readers:
            raise ValueError(f"need {self.num_readers} reader positions, got {len(positions)}")
        self.start_positions, self.role_offset = list(positions), role_offset

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if workers != self.num_readers:
            raise RuntimeError(f"BatchStream was built for {self.num_readers} reader(s) per rank but runs in {workers}")
        role = (worker + self.role_offset) % workers
        return self._batches(role, self.start_positions[role] or Position())

    def _batches(self, role: int, start: Position) -> Iterator[dict[str, Any]]:
        slot = self.rank * self.num_readers + role
        cfg = self.config
        counter = SkipCounter()
        items: list[TrainItem] = []
        epoch, first_unit, first_member = start.epoch, start.unit, start.member
        while True:
            units = self.plan.units(slot, epoch)
            whole_epoch, used_in_epoch = first_unit == 0 and first_member == 0, 0
            for u in range(first_unit, len(units)):
                # Re-reading a unit we were part-way through: its container problems were counted already.
                members = read_members(
                    self.specs[units[u].shard], SkipCounter() if first_member else counter, cfg.max_member_bytes
                )
                order = self.plan.member_order(units[u], epoch, len(members))
                for m in range(first_member, len(order)):  # members before first_member: consumed, not decoded
                    sample = decode_sample(members[order[m]], counter, cfg.box_tolerance, cfg.max_image_pixels)
                    if sample is None:
                        continue
                    used_in_epoch += 1
                    items.append(prepare(sample, epoch, cfg))
                    if len(items) == cfg.batch_size:
                        batch = collate(
                            items, self.processor, cfg.max_text_length, cfg.num_subcaptions, cfg.num_regions
                        )
                        after = _next_position(epoch, u, m + 1, len(order), len(units))
                        batch[STATE_KEY] = {"role": role, **after.as_dict()}
                        batch[SKIPS_KEY] = counter.pop_delta()
                        yield batch
                        items = []
                first_member = 0
            if used_in_epoch == 0 and whole_epoch:
                raise RuntimeError(
                    f"rank {self.rank} reader {role} found no usable sample in a whole epoch ({epoch}) of its "
                    f"{len(units)} unit(s) (skips so far: {counter.as_dict()}); with {len(self.specs)} shard(s) "
                    f"for {self.plan.num_slots} readers, use fewer workers or more data"
                )
            epoch, first_unit = epoch + 1, 0


def _next_position(epoch: int, unit: int, member: int, num_members: int, num_units: int) -> Position:
    """The position after reading ``member - 1``, moved past a finished unit so a resume does not re-read it."""
    if member < num_members:
        return Position(epoch, unit, member)
    if unit + 1 < num_units:
        return Position(epoch, unit + 1, 0)
    return Position(epoch + 1, 0, 0)
