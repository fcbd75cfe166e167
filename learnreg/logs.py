"""Where messages go: learnreg's own to the terminal, the libraries' (VTK, ITK, MetaIO) to the log.

VTK and ITK write warnings straight to the process's standard error from C++ (VTK in colour, through its
logger; ITK's readers through ``std::cerr``), which Python's logging cannot intercept. While
:func:`library_messages_to_log` is active, file descriptor 2 points at a temporary file; afterwards every
line written there goes to the logger ``learnreg.libraries`` (at DEBUG level), so the command line shows
only its own progress bar and messages, and ``learnreg register --log FILE`` keeps the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, TextIO

LIBRARY_LOGGER = "learnreg.libraries"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def library_messages_to_log() -> Iterator[TextIO]:
    """Capture what is written to standard error (file descriptor 2) while active and log it afterwards.

    Yields a text stream on the original standard error, for the caller's own messages (a progress bar).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            terminal.close()
            capture.seek(0)
            logger = logging.getLogger(LIBRARY_LOGGER)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                line = _ANSI.sub("", line).strip()
                if line:
                    logger.debug(line)


def log_to_file(path) -> logging.Handler:
    """Send learnreg's log (the libraries' messages included) to ``path``; returns the handler."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("learnreg")
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    return handler
