"""One status line per step on stderr, rewritten in place on a terminal.

Off a terminal (CI logs, pipes) only the final line of each step is written,
so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self._last = 0.0

    def update(self, text: str) -> None:
        """Replace the current line (throttled to ten updates a second)."""
        if self.quiet or not self.tty:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()

    def done(self, text: str) -> None:
        """Finish the current line with its final text."""
        if self.quiet:
            return
        self.stream.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        self.stream.flush()
        self._last = 0.0
