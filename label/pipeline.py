"""The VESL run: input units → decode → caption → noun phrases → detect → merged JSON → output shards.

Resumable shard by shard: a unit whose output shard exists is finished and skipped; a shard is written to a
temporary name and renamed only when whole, so a run killed part-way redoes exactly the unfinished shard.
Batches never cross shards, and decoding is greedy, so a resumed run writes the same bytes as an
uninterrupted one. Per finished shard a small JSON (counts, skips) is kept under ``.label-state/``; at the end
``sizes.json`` (for the pretraining loader) and ``label_summary.json`` (counts, skips by reason, per-stage
images/s of this run) are written.
"""

from __future__ import annotations

import json
import logging
import tarfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from PIL import Image
from tqdm import tqdm

from loclip.core.image_loading import RASTER_EXTENSIONS as IMAGE_EXTENSIONS
from loclip.core.image_loading import ImageTooLarge, open_raster, to_rgb
from loclip.core.json_input import InputRefused, parse_json
from loclip.core.recipe import CheckedConfig, PositiveInt, between, option
from loclip.pretrain.data import RawSample, SkipCounter
from loclip.shards import skips as S
from loclip.shards.write import ShardWriter, atomic_write_json, json_bytes, remove_partial

from .inputs import Unit, check_not_inside
from .phrases import DEFAULT_MAX_QUERIES, select_queries
from .stages import Captioner, Captions, Detector, PhraseExtractor
from .writer import RegionsMode, merge_record

logger = logging.getLogger(__name__)

STATE_DIR = ".label-state"
SUMMARY_FILE = "label_summary.json"
SIZES_FILE = "sizes.json"
STAGES = ("decode", "caption", "phrases", "detect", "write")
NO_CAPTION = "sample/missing_caption"  # no caption in the input and none generated: unusable for pretraining


@dataclass
class LabelConfig(CheckedConfig):
    """How a run writes its output (``loclip-label``'s ``--label.*`` flags), checked once, when it is built.

    ``output_dir``: where output shards go (one per input unit, same name). ``batch_size``: images per
    captioner/detector call. ``max_queries``: detector queries per image. ``regions_mode``/``dedupe_iou``: how
    generated regions meet existing ones (see ``writer.merge_record``). ``phrases_from_existing``: also take
    noun phrases from the sample's existing captions (always done when there is no captioner).
    """

    FIELD_PREFIX = "label."

    output_dir: str = option(help="output folder: one shard per input shard, same name")
    batch_size: PositiveInt = option(8, "images per model call")
    max_queries: PositiveInt = option(DEFAULT_MAX_QUERIES, "detector queries per image")
    regions_mode: RegionsMode = option(
        "add",
        "existing regions: add (keep them, add new non-overlapping ones), "
        "fill (label only samples without regions), replace",
    )
    dedupe_iou: Annotated[float, between(0, 1, low_open=True)] = option(
        0.7, "IoU at which a generated box duplicates an existing one (regions_mode add)"
    )
    phrases_from_existing: bool = option(False, "also take phrases from the samples' existing captions")
    progress: bool = option(True, "show a progress bar")

    def validate(self) -> None:
        if not self.output_dir:
            raise ValueError(f"label.output_dir must be a path, got {self.output_dir!r}")


@dataclass
class StageTimer:
    """Seconds and images per stage; ``images_per_s`` is what the logs and the summary report."""

    seconds: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)

    def add(self, stage: str, seconds: float, images: int) -> None:
        self.seconds[stage] += seconds
        self.images[stage] += images

    def report(self) -> dict[str, dict[str, float]]:
        return {
            s: {
                "images": self.images[s],
                "seconds": round(self.seconds[s], 3),
                "images_per_s": round(self.images[s] / self.seconds[s], 2) if self.seconds[s] > 0 else None,
            }
            for s in STAGES
            if self.images[s]
        }


@dataclass
class _Item:
    raw: RawSample
    record: dict[str, Any]
    image: Image.Image


def decode(raw: RawSample, counter: SkipCounter) -> _Item | None:
    """A raw sample → its JSON (``{}`` when it has none: image-only data is what labelling is for) and RGB
    image in display orientation, or ``None`` after counting why not (reasons of ``loclip.shards.skips``)."""
    where = f"{raw.key} in {raw.source}"
    record: Any = {}
    if "json" in raw.files:
        try:
            record = parse_json(raw.files["json"], where)
        except InputRefused as e:  # not UTF-8, not JSON, or nested too deeply
            counter.add(S.SAMPLE_BAD_JSON, str(e))
            return None
        if not isinstance(record, dict):
            counter.add(S.SAMPLE_BAD_JSON, f"{where}: JSON is a {type(record).__name__}")
            return None
    ext = next((e for e in IMAGE_EXTENSIONS if e in raw.files), None)
    if ext is None:
        counter.add(S.SAMPLE_MISSING_IMAGE, f"{where}: members {sorted(raw.files)}")
        return None
    try:  # EXIF orientation applied, as the pretraining reader does
        image = to_rgb(open_raster(raw.files[ext], raw.key), raw.key)
    except ImageTooLarge as e:
        counter.add(S.SAMPLE_IMAGE_TOO_LARGE, f"{where}: {e}")
        return None
    except ValueError as e:  # ImageRefused: not an allowed raster format, corrupt or truncated
        counter.add(S.SAMPLE_BAD_IMAGE, f"{where}: {e}")
        return None
    return _Item(raw, record, image)


def _existing_texts(record: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    for name in ("caption", "short_captions", "long_captions"):
        value = record.get(name)
        for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(text, str):
                texts.append(text)
    return texts


class Labeller:
    """Runs the stages over units. ``captioner=None`` labels from existing captions only."""

    def __init__(
        self,
        config: LabelConfig,
        captioner: Captioner | None,
        phrases: PhraseExtractor,
        detector: Detector,
    ) -> None:
        for name, stage in (("phrases", phrases), ("detector", detector)):
            if not callable(stage):
                raise TypeError(f"{name} must be callable, got {type(stage).__name__}")
        if captioner is not None and not callable(captioner):
            raise TypeError(f"captioner must be callable or None, got {type(captioner).__name__}")
        self.config, self.captioner, self.phrases, self.detector = config, captioner, phrases, detector
        self.timer = StageTimer()

    def run(self, units: Sequence[Unit]) -> dict[str, Any]:
        """Label every unfinished unit → the summary (also written to ``output_dir/label_summary.json``)."""
        out = Path(self.config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        check_not_inside(list(units), out)
        state_dir = out / STATE_DIR
        state_dir.mkdir(exist_ok=True)
        for partial in remove_partial(out) + remove_partial(state_dir):
            logger.info("removed %s, left by an interrupted run", partial.name)
        pending = [u for u in units if not (out / u.name).is_file()]
        if len(pending) < len(units):
            logger.info(
                "%d of %d shards are finished already; labelling %d",
                len(units) - len(pending),
                len(units),
                len(pending),
            )
        sizes = [u.size for u in pending]
        total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
        with tqdm(total=total, unit="img", desc="labelling", disable=not self.config.progress) as bar:
            for unit in pending:
                stats = self._label_unit(unit, out / unit.name, state_dir / f"{unit.name}.json", bar)
                logger.info(
                    "%s: %d images, %d generated regions, skipped %s; images/s %s",
                    unit.name,
                    stats["images"],
                    stats["regions"],
                    stats["skipped"],
                    self._rates(),
                )
        summary = self._summary(units, out, state_dir, len(pending))
        atomic_write_json(out / SIZES_FILE, summary.pop("sizes"))
        atomic_write_json(out / SUMMARY_FILE, summary)
        return summary

    def _rates(self) -> dict[str, float | None]:
        return {s: r["images_per_s"] for s, r in self.timer.report().items()}

    def _label_unit(self, unit: Unit, path: Path, state_path: Path, bar: tqdm) -> dict[str, Any]:
        counter = SkipCounter()
        timer, bs = self.timer, self.config.batch_size
        raws = unit.read(counter)
        regions = 0
        with ShardWriter(path) as shard:
            for start in range(0, len(raws), bs):
                t0 = time.perf_counter()
                batch = [item for raw in raws[start : start + bs] if (item := decode(raw, counter)) is not None]
                timer.add("decode", time.perf_counter() - t0, min(bs, len(raws) - start))
                if batch:
                    regions += self._label_batch(batch, shard, counter)
                bar.update(min(bs, len(raws) - start))
            stats = {"images": shard.count, "regions": regions, "skipped": counter.as_dict()}
            atomic_write_json(state_path, stats)  # before the rename: a finished shard always has its stats
            shard.commit()
        return stats

    def _label_batch(self, batch: list[_Item], shard: ShardWriter, counter: SkipCounter) -> int:
        cfg, timer, n = self.config, self.timer, len(batch)
        images = [item.image for item in batch]
        captions: list[Captions | None] = [None] * n
        if self.captioner is not None:
            t0 = time.perf_counter()
            captions = list(self.captioner(images))
            timer.add("caption", time.perf_counter() - t0, n)
            if len(captions) != n:
                raise RuntimeError(f"the captioner returned {len(captions)} captions for {n} images")
        t0 = time.perf_counter()
        queries = []
        for item, cap in zip(batch, captions):
            texts = [cap.long, cap.short] if cap is not None else []
            if cap is None or cfg.phrases_from_existing:
                texts += _existing_texts(item.record)
            queries.append(select_queries(texts, self.phrases, cfg.max_queries))
        timer.add("phrases", time.perf_counter() - t0, n)
        t0 = time.perf_counter()
        detections = self.detector(images, queries)
        timer.add("detect", time.perf_counter() - t0, n)
        if len(detections) != n:
            raise RuntimeError(f"the detector returned {len(detections)} results for {n} images")
        t0 = time.perf_counter()
        regions = 0
        for item, cap, q, dets in zip(batch, captions, queries, detections):
            merged = merge_record(item.record, cap, q, dets, cfg.regions_mode, cfg.dedupe_iou)
            caption = merged.get("caption")
            if not isinstance(caption, str) or not caption.strip():
                counter.add(NO_CAPTION, f"{item.raw.key} in {item.raw.source}")
                continue
            files = dict(item.raw.files)
            files["json"] = json_bytes(merged)  # replaces the old JSON in place, or comes after the image
            shard.add(item.raw.key, files)
            kept = item.record.get("regions") if cfg.regions_mode != "replace" else None
            regions += len(merged["regions"]) - (len(kept) if isinstance(kept, list) else 0)  # the generated ones
        timer.add("write", time.perf_counter() - t0, n)
        return regions

    def _summary(self, units: Sequence[Unit], out: Path, state_dir: Path, written: int) -> dict[str, Any]:
        sizes: dict[str, int] = {}
        skipped: Counter[str] = Counter()
        regions = 0
        for unit in units:
            if not (out / unit.name).is_file():
                continue
            state_path = state_dir / f"{unit.name}.json"
            try:
                stats = json.loads(state_path.read_text())
            except (OSError, ValueError):  # an output shard from elsewhere: count its samples, nothing else
                stats = {"images": _count_samples(out / unit.name), "regions": 0, "skipped": {}}
            sizes[unit.name] = stats["images"]
            regions += stats["regions"]
            skipped.update(stats["skipped"])
        return {
            "complete": len(sizes) == len(units),
            "shards": {"inputs": len(units), "finished": len(sizes), "written_this_run": written},
            "images": sum(sizes.values()),
            "generated_regions": regions,
            "skipped": dict(sorted(skipped.items())),
            "throughput_this_run": self.timer.report(),
            "stages": {
                "captioner": repr(self.captioner),
                "phrases": repr(self.phrases),
                "detector": repr(self.detector),
            },
            "sizes": sizes,
        }


def _count_samples(path: Path) -> int:
    with tarfile.open(path) as tar:
        return len({m.name.split(".", 1)[0] for m in tar.getmembers() if m.isfile()})


def label(
    units: Sequence[Unit],
    config: LabelConfig,
    captioner: Captioner | None,
    phrases: PhraseExtractor,
    detector: Detector,
) -> dict[str, Any]:
    """Label ``units`` into ``config.output_dir`` with the given stages → the run summary."""
    return Labeller(config, captioner, phrases, detector).run(units)
