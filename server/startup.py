"""Why the hub could not start, in one line that says what to do.

A failed start must end the process at once with a message an operator can act
on, not a traceback or a hang. :class:`ClipwireServer.start` turns each failure
of its steps (listening, the store, the broker) into :class:`StartupError`
(a schema of another version stays :class:`SchemaOutOfDate`),
naming the settings involved; ``clipwire serve`` prints it on one line and exits
with :data:`EXIT_STARTUP`, and shows the traceback only with ``--log-level DEBUG``.
"""

from __future__ import annotations

import errno
import os
from urllib.parse import urlsplit, urlunsplit

from .config import HubConfig
from .store.base import SchemaOutOfDate

#: ``clipwire serve``'s exit status when it could not start (2 is a wrong setting).
#: The ``--workers`` supervisor stops rather than restarting a worker that exits so.
EXIT_STARTUP = 3


class StartupError(Exception):
    """The hub could not start; the message is one line naming the cause and the remedy."""


#: What a failed start raises: the store's schema error keeps its own type (embedders
#: catch it), and already says what to run.
FAILURES = (StartupError, SchemaOutOfDate)


def without_password(url: str) -> str:
    """``url`` fit for a log line: database and Redis URLs may carry a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def cannot_listen(exc: OSError, host: str, port: int, *, api: bool = False) -> StartupError:
    """A bind that failed: the port taken, the address not on this machine, or refused."""
    what = "the server API" if api else "the hub"
    host_flag, port_flag = ("--api-host", "--api-port") if api else ("--host", "--port")
    where = f"cannot listen on {host}:{port} for {what}"
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"{where}: the port is in use (another hub?); stop what holds it "
                            f"or choose another {port_flag}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"{where}: {host} is not an address of this machine; use one that "
                            f"is with {host_flag} (127.0.0.1 for this machine only, 0.0.0.0 for all)")
    if exc.errno == errno.EACCES:
        return StartupError(f"{where}: permission denied; choose a {port_flag} above 1023")
    return StartupError(f"{where}: {exc.strerror or exc}; check {host_flag} and {port_flag}")


def store_failed(config: HubConfig, exc: Exception) -> StartupError:
    """The store did not open: PostgreSQL unreachable or its database missing, or --db unwritable."""
    reason = _reason(exc)
    if config.database_url:
        url = without_password(config.database_url)
        return StartupError(f"cannot open the PostgreSQL store at {url}: {reason}; start "
                            "PostgreSQL, create the database or correct --database-url "
                            "(CLIPWIRE_DATABASE_URL)")
    if os.path.isdir(config.db):
        reason = "it is a directory"
    return StartupError(f"cannot open the SQLite database {config.db}: {reason}; choose a --db "
                        "(CLIPWIRE_DB) file in a directory this user may write")


def broker_failed(config: HubConfig, exc: Exception) -> StartupError:
    """Redis did not answer at start: exit, and let the service manager start us again."""
    url = without_password(config.redis_url or "")
    return StartupError(f"cannot reach Redis at {url}: {_reason(exc)}; start Redis or correct "
                        "--redis-url (CLIPWIRE_REDIS_URL)")


def secret_failed(path: str, exc: OSError) -> StartupError:
    """The token secret beside --db could not be created."""
    return StartupError(f"cannot create the token secret {path}: {_reason(exc)}; choose a "
                        "--db (CLIPWIRE_DB) in a directory this user may write, or set --secret")


def _reason(exc: BaseException) -> str:
    """What went wrong underneath a store's or broker's own wrapping exception."""
    cause = exc.__cause__ or exc
    if isinstance(cause, FileExistsError) and cause.filename and not os.path.isdir(cause.filename):
        return f"{cause.filename} is not a directory"  # what mkdir met on the way
    if isinstance(cause, TimeoutError) and not cause.strerror:
        return "connected, but no answer within a few seconds (is it the right port?)"
    if isinstance(cause, OSError) and cause.strerror:
        return f"{cause.strerror}{f' ({cause.filename})' if cause.filename else ''}"
    return str(cause).rstrip(".") or type(cause).__name__
