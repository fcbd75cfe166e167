"""Progress reporting and cancellation shared by every registrar.

A registrar reports ``progress(fraction, message)`` with ``fraction`` in [0, 1] and polls a
:class:`CancelToken` between iterations; when it is set, the registrar raises
:class:`~learnreg.errors.RegistrationCancelled` and returns nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional

from learnreg.errors import RegistrationCancelled

ProgressCallback = Callable[[float, str], None]


class CancelToken:
    """A thread-safe cancel flag (set from a GUI or signal handler, polled by the registrar)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise RegistrationCancelled()


class Progress:
    """Maps a stage's own progress into an overall fraction and checks for cancel on every report.

    Args:
        callback: receives ``(fraction, message)``; ``None`` reports nothing.
        cancel: a token polled on every report.
        start, end: the span of the overall fraction this reporter covers.
    """

    def __init__(self, callback: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                 start: float = 0.0, end: float = 1.0) -> None:
        self.callback = callback
        self.cancel = cancel
        self.start = start
        self.end = end

    def report(self, fraction: float, message: str = "") -> None:
        """Report, checking the cancel token before and after the callback (a GUI's callback may process
        the click on Cancel)."""
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        if self.callback is not None:
            f = min(max(fraction, 0.0), 1.0)
            self.callback(self.start + (self.end - self.start) * f, message)
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()

    def as_callback(self) -> Optional[ProgressCallback]:
        """A plain ``(fraction, message)`` callback reporting into this reporter's range (None when it
        reports nothing and checks nothing)."""
        if self.callback is None and self.cancel is None:
            return None
        return self.report

    def span(self, start: float, end: float) -> "Progress":
        """A reporter for the sub-range ``[start, end]`` of this one."""
        width = self.end - self.start
        return Progress(self.callback, self.cancel, self.start + width * start, self.start + width * end)


class TerminalProgressBar:
    """A one-line progress bar on a terminal (plain periodic lines when not a terminal)."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_line_time = 0.0
        self._start = time.perf_counter()

    def __call__(self, fraction: float, message: str) -> None:
        elapsed = time.perf_counter() - self._start
        filled = int(round(self.width * fraction))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {100 * fraction:5.1f}% {elapsed:6.1f}s {message}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
            self.stream.flush()
        elif time.perf_counter() - self._last_line_time > 2.0 or fraction >= 1.0:
            self._last_line_time = time.perf_counter()
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line and restart its clock for the next task."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._start = time.perf_counter()
