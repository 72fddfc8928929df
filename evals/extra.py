"""Is the optional ``evals`` extra installed? Stdlib only, so the core can ask cheaply.

Used by ``arbiter evals`` (exit 2 naming what is missing) and ``POST /evaluations`` (503
``evals_unavailable``) before they load anything heavy.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["EXTRA_HINT", "missing_modules"]


EXTRA_HINT = "pip install -e '.[evals]'"


def _importable(module: str) -> bool:
    """True when ``module`` can be imported (a None entry in sys.modules means blocked)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(transcribe: bool) -> list[str]:
    """The modules of the extra this process lacks for an evaluation (empty: it can run)."""
    needed = ["soundfile", "librosa"] + (["torch", "whisper"] if transcribe else [])
    return [m for m in needed if not _importable(m)]
