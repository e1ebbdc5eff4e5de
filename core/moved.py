"""Old import paths of modules that moved, kept working for one release with a ``DeprecationWarning``."""

from __future__ import annotations

import importlib
import sys
import warnings


def alias_module(old: str, new: str) -> None:
    """Make ``import old`` give the module ``new`` itself (one module object, so patches and ``isinstance`` agree),
    warning the importer that ``old`` goes away in the next release."""
    warnings.warn(f"{old} moved to {new}; the old name goes away in the next release", DeprecationWarning, stacklevel=2)
    sys.modules[old] = importlib.import_module(new)
