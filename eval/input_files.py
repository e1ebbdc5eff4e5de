"""Moved to ``loclip.core.json_input``; this name keeps working for one release, with a ``DeprecationWarning``."""

from loclip.core.moved import alias_module

alias_module(__name__, "loclip.core.json_input")
