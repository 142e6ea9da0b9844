"""Files written whole or not at all: a reader (another process, a crash's survivor) sees the old
file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """A file to write in place of `path`: written beside it (same folder, so same file
    system), renamed over it when the block ends, deleted if the block raises."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("wb" if binary else "w", dir=path.parent, delete=False,
                                     prefix=f".{path.name}.", suffix=".tmp",
                                     encoding=None if binary else "utf-8") as f:
        try:
            yield f
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    os.replace(f.name, path)
