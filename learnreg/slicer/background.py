"""A job in a worker thread that a GUI thread polls: how a LearnReg panel stays responsive while it registers.

Why a thread and not a process (SlicerElastix runs the elastix executable as a process and kills it on
Cancel): LearnReg's registration is Python and torch in Slicer's own interpreter. In a thread, torch,
the registrar modules and the network weights are imported and loaded once per Slicer session rather
than once per run (seconds each time), the images are shared rather than copied between processes,
and torch and numpy release the interpreter lock while they compute, so the GUI thread keeps running.
A process could be killed at any instant; a thread stops at its next check of the cancel token, which
every registrar polls at each progress report (at least every 0.5 s of work, see the panel benchmark).
The panel does not wait for that: on Cancel it goes idle at once, and the job, which never touches the
scene, ends on its own at its next check and its late events are dropped.

The job posts events into a queue; the GUI thread reads them with :meth:`BackgroundJob.poll`:
``("progress", (fraction, message))``, then one of ``("done", value)``, ``("cancelled", None)``,
``("error", LearnRegError)`` (a user's mistake, to show as it is) or ``("failed", (exception, traceback))``.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from learnreg.errors import LearnRegError, RegistrationCancelled
from learnreg.progress import CancelToken, ProgressCallback


@dataclass
class JobEvent:
    kind: str  # progress, done, cancelled, error, failed
    payload: Any
    time: float  # time.monotonic() when the job posted it


class BackgroundJob:
    """Runs ``work(progress, cancel)`` in a daemon thread (see the module docstring)."""

    def __init__(self, work: Callable[[ProgressCallback, CancelToken], Any], name: str = "LearnReg job") -> None:
        self.work = work
        self.cancel_token = CancelToken()
        self._events: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.started_at = None
        self.ended_at = None

    def start(self) -> "BackgroundJob":
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def _post(self, kind: str, payload: Any = None) -> None:
        self._events.put(JobEvent(kind, payload, time.monotonic()))

    def _progress(self, fraction: float, message: str) -> None:
        self.cancel_token.raise_if_cancelled()
        self._post("progress", (float(fraction), str(message)))

    def _run(self) -> None:
        try:
            value = self.work(self._progress, self.cancel_token)
            if self.cancel_token.cancelled:
                raise RegistrationCancelled()
            self._post("done", value)
        except RegistrationCancelled:
            self._post("cancelled")
        except LearnRegError as error:
            self._post("error", error)
        except BaseException as error:  # reported to the GUI with its traceback, never lost in the thread
            self._post("failed", (error, traceback.format_exc()))
        finally:
            self.ended_at = time.monotonic()

    def poll(self) -> list:
        """The events posted since the last call, oldest first."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def cancel(self) -> None:
        self.cancel_token.cancel()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float = None) -> bool:
        """Wait for the thread to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
