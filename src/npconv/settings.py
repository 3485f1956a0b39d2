"""npconv's settings: process defaults, and blocks that override them for one thread or task.

Four settings steer every call: the forced ``algorithm`` (None: the planner chooses),
``autotune`` (time the candidates once and keep the fastest), the ``threads`` cap of BLAS,
Numba and the FFTs (None: each library's own default) and the ``workspace_limit`` on scratch
memory in bytes.  Each has a process default, set by :func:`npconv.set_algorithm`,
:func:`npconv.set_autotune`, :func:`npconv.set_num_threads` and
:func:`npconv.set_workspace_limit` (like ``torch.set_num_threads``), and a block form that
applies only where it runs::

    with npconv.config(algorithm="im2col_gemm", threads=2, workspace_limit=64 * 2**20):
        y = npconv.conv(x, w)

A block is held in a :mod:`contextvars` variable, as :func:`decimal.localcontext` is: it applies
in the thread (or asyncio task) that entered it, and in the asyncio tasks and
``asyncio.to_thread`` calls started inside it (they copy the context), so threads and tasks
running at once each see their own settings; a thread started with ``threading.Thread`` begins
from the process defaults, not from the block of the thread that started it.  One ``config``
object serves one ``with`` at a time (make one per block, as each ``with npconv.config(...)``
does).  Blocks nest (the inner one's values win, the rest
come from the outer one), and a setting a block does not name follows the process default,
even one changed while the block runs.

Every read goes through :func:`current`: the block's values over the process defaults, as one
frozen :class:`Settings`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from typing import Any, Callable

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings in effect (frozen): see the module docstring for what each one does.

    Attributes
    ----------
    algorithm : str or None
        The forced algorithm (None: the planner chooses).
    autotune : bool
        Time the candidates once per problem and keep the fastest.
    threads : int or None
        The cap on BLAS, Numba and FFT threads (None: each library's default).
    workspace_limit : int
        The cap on scratch memory, in bytes.
    """
    algorithm: str | None = None
    autotune: bool = False
    threads: int | None = None
    workspace_limit: int = DEFAULT_WORKSPACE_LIMIT


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET = _Unset()  # "not given": None is a value (no forced algorithm, no thread cap)

_defaults = Settings()
_defaults_lock = threading.Lock()


class _Block:
    """The values a block sets (its own over its outer block's), and the last merge with the
    defaults, kept while they do not change: reads are frequent (every chunk asks the cap)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.merged: tuple[Settings, Settings] | None = None  # (defaults, merged): one atomic swap


_block: contextvars.ContextVar[_Block | None] = contextvars.ContextVar("npconv_config", default=None)


def current() -> Settings:
    """The settings in effect here: the innermost block's values over the process defaults."""
    block, defaults = _block.get(), _defaults
    if block is None:
        return defaults
    memo = block.merged
    if memo is not None and memo[0] is defaults:  # no default changed since the last read
        return memo[1]
    merged = dataclasses.replace(defaults, **block.values)
    block.merged = (defaults, merged)
    return merged


def defaults() -> Settings:
    """The process defaults (what a thread outside every block sees)."""
    return _defaults


def set_defaults(*, where: str = "npconv.settings.set_defaults", **changes: Any) -> Settings:
    """Change process defaults (checked first; ``where`` names the caller in errors); returns the
    previous defaults.  Blocks that set the same setting keep their own value.

    Raises
    ------
    TypeError
        An unknown setting.
    ValueError
        A value the setting does not take (see :class:`config`).
    """
    checked = _checked(where, changes)
    global _defaults
    with _defaults_lock:  # swap and report the previous defaults as one step
        previous = _defaults
        _defaults = dataclasses.replace(previous, **checked)
    return previous


class config:
    """``with npconv.config(...):`` runs the block under these settings, in this thread or
    task only (see :mod:`npconv.settings`).

    Only the settings named change; the arguments are checked here, before the block runs.
    ``with`` gives the :class:`Settings` in effect.  One instance serves one ``with`` at a time.

    Parameters
    ----------
    algorithm : str or None, optional
        Force this algorithm wherever it applies (a name of :data:`npconv.select.ALGORITHMS`);
        None lets the planner choose.
    autotune : bool, optional
        Time the candidates once per problem and keep the fastest.
    threads : int or None, optional
        Cap BLAS, Numba and the FFTs at this many threads; None: no cap.
    workspace_limit : int, optional
        Cap scratch memory at this many bytes (at least 1 MiB).

    Raises
    ------
    ValueError
        A value the setting does not take, naming it.
    RuntimeError
        Entering an instance that is already in use.

    Examples
    --------
    >>> import npconv
    >>> with npconv.config(threads=1, workspace_limit=2**20) as settings:
    ...     settings.threads, npconv.get_num_threads()
    (1, 1)
    """

    def __init__(self, *, algorithm: str | None | _Unset = UNSET, autotune: bool | _Unset = UNSET,
                 threads: int | None | _Unset = UNSET, workspace_limit: int | _Unset = UNSET) -> None:
        given = dict(algorithm=algorithm, autotune=autotune, threads=threads, workspace_limit=workspace_limit)
        self._values = _checked("npconv.config", {k: v for k, v in given.items() if v is not UNSET})
        self._token: contextvars.Token[_Block | None] | None = None

    def __enter__(self) -> Settings:
        if self._token is not None:
            raise RuntimeError("this npconv.config block is already in use; make one per with-statement")
        outer = _block.get()
        self._token = _block.set(_Block({**(outer.values if outer else {}), **self._values}))
        self._fit_kept_buffers()
        return current()

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _block.reset(token)
        self._fit_kept_buffers()

    def _fit_kept_buffers(self) -> None:
        """This thread's kept scratch buffers fit under the cap now in effect, at once."""
        if "workspace_limit" in self._values:
            from . import workspace

            workspace.trim()

    def __repr__(self) -> str:
        return "npconv.config(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


# ---- checks: one per setting, shared by the block and the process setters --------------

def _checked(where: str, values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - {field.name for field in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"{where}: unknown setting(s) {sorted(unknown)}; "
                        f"the settings are {[field.name for field in dataclasses.fields(Settings)]}")
    return {name: _CHECKS[name](where, value) for name, value in values.items()}


def _check_algorithm(where: str, name: object) -> str | None:
    from .select import ALGORITHMS

    if name is not None and (not isinstance(name, str) or name not in ALGORITHMS):
        raise ValueError(f"{where}: unknown algorithm {name!r}; algorithm must be None or one of "
                         f"{sorted(ALGORITHMS)}")
    return name


def _check_autotune(where: str, enabled: object) -> bool:
    if not isinstance(enabled, (bool, int)) or enabled not in (0, 1):
        raise ValueError(f"{where}: autotune must be True or False, got {enabled!r}")
    return bool(enabled)


def _check_threads(where: str, threads: object) -> int | None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"{where}: threads must be a positive int or None, got {threads!r}")
    return threads


def _check_workspace_limit(where: str, nbytes: object) -> int:
    from .workspace import MIN_LIMIT

    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < MIN_LIMIT:
        raise ValueError(f"{where}: workspace_limit must be an int of at least 1 MiB ({MIN_LIMIT} bytes), "
                         f"got {nbytes!r}")
    return nbytes


_CHECKS: dict[str, Callable[[str, Any], Any]] = {"algorithm": _check_algorithm, "autotune": _check_autotune, "threads": _check_threads,
           "workspace_limit": _check_workspace_limit}
