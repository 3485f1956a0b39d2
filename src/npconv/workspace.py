"""The cap on the scratch memory an algorithm may use at once (window buffers, transforms)."""

from __future__ import annotations

_limit = 256 * 2**20


def limit() -> int:
    """The current cap in bytes (default 256 MiB)."""
    return _limit


def set_workspace_limit(nbytes: int) -> int:
    """Set the cap (bytes, >= 1 MiB); returns the previous one.  Algorithms chunk their work to
    stay under it; the planner skips an algorithm that cannot."""
    global _limit
    if not isinstance(nbytes, int) or nbytes < 2**20:
        raise ValueError(f"workspace limit must be an int of at least 1 MiB (1048576 bytes), got {nbytes!r}")
    previous, _limit = _limit, nbytes
    return previous
