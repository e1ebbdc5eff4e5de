"""Moved to ``loclip.finetune.builder``; this name keeps working for one release, with a ``DeprecationWarning``."""

from loclip.core.moved import alias_module

alias_module(__name__, "loclip.finetune.builder")
