"""Where minimult keeps files between processes on this machine: $XDG_CACHE_HOME/minimult,
by default ~/.cache/minimult. Everything there can be rebuilt, so it is safe to delete."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    """The folder of one kind of cached file (not created here)."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "minimult" / name
