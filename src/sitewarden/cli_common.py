"""What the ``sitewarden`` store commands share: exit statuses, ``--store``, error lines.

Every store command (``reports``, ``events``, ``lockout``, ``bans``) ends an expected
failure the same way: one line ``sitewarden: error: …`` on standard error and exit status
:data:`EXIT_FAILURE` (store unavailable or damaged) or :data:`EXIT_USAGE` (bad setting).

How a failure travels: :func:`guarded` and :func:`with_store` print the error line and
raise :class:`CommandFailed`, which carries the exit status; a ``run_*`` function
decorated with :func:`returns_failure_status` returns that status. An exception was
chosen over returning ``(status, value)`` so that each ``run_*`` reads straight through —
``reports, url = with_store(…)`` — with no "did it fail?" check after every step, while
the exceptions converted stay exactly those raised inside the guarded call (an error in
the output code after it is not turned into an exit status here).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sitewarden.errors import ConfigError, SitewardenError
from sitewarden.store import Store, default_store_url, open_store

__all__ = [
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "CommandFailed",
    "add_store_option",
    "error",
    "guarded",
    "positive",
    "returns_failure_status",
    "store_url",
    "with_store",
]

#: Exit status for a runtime failure (store unavailable or damaged, file unreadable).
EXIT_FAILURE = 1
#: Exit status for bad usage or a bad setting (argparse uses 2 for its own errors too).
EXIT_USAGE = 2

_STORE_HELP = "store URL (default: $SITEWARDEN_STORE or sqlite:///.sitewarden/state.db)"

_T = TypeVar("_T")
_P = ParamSpec("_P")


class CommandFailed(Exception):
    """An expected failure, already reported on standard error; ends the command."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        #: The exit status the command returns.
        self.status = status


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """Add the ``--store URL`` option (default ``None``: see :func:`store_url`)."""
    parser.add_argument("--store", default=None, help=_STORE_HELP)


def store_url(args: argparse.Namespace) -> str:
    """Return the store URL of *args*: ``--store``, else ``$SITEWARDEN_STORE`` or the default."""
    # getattr: the run_* functions are also called with hand-made namespaces.
    return getattr(args, "store", None) or default_store_url()


def positive(text: str) -> int:
    """Parse a whole number ≥ 1 (an argparse ``type=``); refuse anything else."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


def error(message: str) -> None:
    """Print *message* as the one ``sitewarden: error:`` line on standard error."""
    print(f"sitewarden: error: {message}", file=sys.stderr)


def guarded(work: Callable[[], _T], *, usage_errors: tuple[type[Exception], ...] = ()) -> _T:
    """Return ``work()``; on an expected failure print it and raise :class:`CommandFailed`.

    :class:`~sitewarden.errors.ConfigError` and *usage_errors* mean :data:`EXIT_USAGE`,
    any other :class:`~sitewarden.errors.SitewardenError` means :data:`EXIT_FAILURE`.
    Anything else is a bug and propagates as it is.
    """
    usage: tuple[type[Exception], ...] = (ConfigError, *usage_errors)
    try:
        return work()
    except usage as exc:  # before SitewardenError: a ConfigError is one
        error(str(exc))
        raise CommandFailed(EXIT_USAGE) from exc
    except SitewardenError as exc:
        error(str(exc))
        raise CommandFailed(EXIT_FAILURE) from exc


def with_store(
    url: str,
    work: Callable[[Store], _T],
    *,
    usage_errors: tuple[type[Exception], ...] = (),
) -> _T:
    """Open the existing store at *url*, return ``work(store)``, and always close it.

    Failures (opening, *work* or closing) are handled as by :func:`guarded`.
    """

    def opened() -> _T:
        store = open_store(url, create=False)  # inspecting never creates a store
        try:
            return work(store)
        finally:
            store.close()

    return guarded(opened, usage_errors=usage_errors)


def returns_failure_status(run: Callable[_P, int]) -> Callable[_P, int]:
    """Decorate a ``run_*`` function so that a :class:`CommandFailed` returns its status."""

    @functools.wraps(run)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> int:
        try:
            return run(*args, **kwargs)
        except CommandFailed as failed:
            return failed.status

    return wrapper
