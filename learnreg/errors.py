"""Errors a user can cause, each with a message that names the problem and the fix.

Everything that a user's input or choice can trigger is raised as a :class:`LearnRegError` (or a
subclass); the command line turns it into a one-line message and exit code 2, and the Slicer modules
show it in a dialog. Anything else escaping the package is a bug.
"""

from __future__ import annotations


class LearnRegError(Exception):
    """A problem with the user's input or settings; the message says what and how to fix it."""


class InputError(LearnRegError):
    """An input image, landmark file or option is unusable as given."""


class ResourceError(LearnRegError):
    """The requested work does not fit the device (memory, missing GPU)."""


class RegistrationCancelled(LearnRegError):
    """The user cancelled a running registration; nothing was produced."""

    def __init__(self, message: str = "registration cancelled by the user") -> None:
        super().__init__(message)
