"""loclip.cli: the commands, one module per stage (``loclip-synth``, ``loclip-pretrain``, ``loclip-finetune``,
``loclip-eval``, ``loclip-label``; ``loclip-demo`` lives with the demo).

Commands sit above every library package: they read their options (a flat dataclass) and, for the trainers,
a recipe, through ``loclip.core.recipe``, so every flag is declared as a typed field, checked in one
place and listed by ``--help`` with its default; then they call the library. Nothing imports them.
"""
