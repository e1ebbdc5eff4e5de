"""The tiny MLLM fixtures, shared with tests/finetune (``tests/tiny_mllm.py``)."""

from tiny_mllm import build_tiny_fixture, ground_batch, image, tiny, tiny_ground  # noqa: F401  (fixtures)
