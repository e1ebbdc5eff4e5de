"""loclip.cli: the commands, one module per stage (``loclip-synth``, ``loclip-pretrain``, ``loclip-finetune``,
``loclip-eval``, ``loclip-label``; ``loclip-demo`` lives with the demo).

Commands sit above every library package: they read their options and, for the trainers, a recipe (the
quickstarts' are files under ``configs/``), through ``loclip.core.recipe``, so every flag is declared as a typed
field, checked in one place and listed by ``--help`` with its default; then they call the library. A command's
options are its own fields and the library's configs nested as sections (``--label.batch_size`` is
``LabelConfig.batch_size``), never a copy of a library field; the flat flags those replaced live on as
``FLAG_ALIASES``. Nothing imports them.

Every command is a process of its own, so this package sets the OpenMP wait policy before any command imports
torch (``loclip.core.threads``: idle threads sleep rather than spin against whatever else runs).
"""

from loclip.core.threads import prepare_process

prepare_process()
