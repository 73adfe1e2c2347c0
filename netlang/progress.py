"""A progress line for long commands: rewritten in place on a terminal, absent otherwise, so a
log or a pipe never fills with carriage returns."""
from __future__ import annotations

import sys


class Progress:
    """`[ 12/122] drawing resnet50` on one line of `stream` (default: stderr), when it is a terminal."""

    def __init__(self, total: int, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        try:
            self.on = self.stream.isatty()
        except (AttributeError, ValueError):        # a closed or unusual stream
            self.on = False
        self.shown = False

    def __call__(self, done: int, what: str, name: str) -> None:
        if not self.on:
            return
        width = len(str(self.total))
        # \r back to the start, ESC[K clears what a longer name left
        self.stream.write(f"\r\x1b[K[{done:>{width}}/{self.total}] {what} {name}")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
