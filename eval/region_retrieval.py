"""Region ↔ phrase retrieval R@K over every region of the dataset (not only within its image).

A region query is right at K if any of its phrases is among the K best phrases; a phrase query is right
if its region is among the K best regions. Identical phrases are matched as identical captions are in
``retrieval`` (the synthetic world says "small red circle" for every small red circle).
"""

from __future__ import annotations

from loclip.encoder import LoclipModel, LoclipProcessor

from .data import Dataset, RegionImage
from .embed import embed_regions, embed_texts
from .report import TaskResult
from .retrieval import caption_incidence, retrieval_metrics


def evaluate_region_retrieval(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[RegionImage],
    method: str = "prompter",
    match_identical: bool = True,
    batch_size: int = 32,
    progress: bool = False,
) -> TaskResult:
    """Regions (``method``: ``"prompter"``/``"roialign"``) against the phrases naming them; every region
    needs at least one phrase (``ValueError`` otherwise)."""
    data.require_items("regions")
    phrases = [r.phrases for item in data.items for r in item.regions]
    if not all(phrases):
        raise ValueError(f"dataset {data.name!r}: region {phrases.index(())} has no phrase to retrieve")
    owns, key = caption_incidence(phrases, match_identical)
    regions = embed_regions(model, processor, data.items, method, batch_size, progress)
    texts = embed_texts(model, processor, [p for group in phrases for p in group], progress=progress)
    info = {
        "num_regions": len(phrases),
        "num_phrases": len(key),
        "region_method": method,
        "match_identical": match_identical,
        "skipped": data.skipped,
    }
    return TaskResult("region_retrieval", data.name, retrieval_metrics(regions, texts, owns, key, ("r2t", "t2r")), info)
