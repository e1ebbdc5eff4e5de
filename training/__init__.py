"""loclip.training: the runtime both trainers share.

Recipes and their flags (``recipe``, ``config``), the DeepSpeed engine with AdamW and the cosine schedule
(``engine``, ``optim``), process groups (``distributed``), seeding, checkpoints with exact resume
(``checkpoint``), scalar logs (``metrics_log``), atomic export and the one training loop (``loop``).
Nothing here knows a model: trainers hand in a module and a step.
"""
