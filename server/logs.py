"""Logging set-up for the ``clipwire`` command (library code never configures logging)."""

from __future__ import annotations

import logging
import sys
import time

import orjson


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs each HTTP request and connection at INFO: a health probe twice a
    # second would write two lines each time. Those show only at DEBUG here, where the hub
    # logs its own, and websockets' DEBUG (frame payloads: a hello shows part of its
    # token) never does. (picows' lines are demoted in transport/picows.py; the server
    # API's aiohttp keeps no access log.)
    quiet = logging.INFO if root.level <= logging.DEBUG else logging.WARNING
    logging.getLogger("websockets").setLevel(quiet)
