"""Progress of long jobs.

A session calls its progress callback about every 100 ms while a call that runs longer than
300 ms works, with a dict::

    {"stages_finished": 1, "stages_planned": 3, "tasks_finished": 4, "tasks_planned": 12,
     "iteration": 5, "max_iter": 20, "loss": 1234.5,   # None outside training
     "elapsed": 1.7, "done": False}

and once more with ``done=True`` when the call ends. :class:`ConsoleProgress` is the default.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TextIO

ProgressCallback = Callable[[dict[str, Any]], None]


def format_event(event: dict[str, Any]) -> str:
    """The one-line description of a progress event."""
    line = (
        f"stages {event['stages_finished']}/{event['stages_planned']} | "
        f"tasks {event['tasks_finished']}/{event['tasks_planned']}"
    )
    if event.get("iteration") is not None:
        line += f" | training iteration {event['iteration']}/{event['max_iter']}"
        if event.get("loss") is not None:
            line += f" loss {event['loss']:.6g}"
    return line + f" | {event['elapsed']:.1f} s"


class ConsoleProgress:
    """Shows progress as one line rewritten in place on a terminal; shows nothing when the
    stream is not a terminal (a log file, a notebook's captured output, a pipe)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._shown = False

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, event: dict[str, Any]) -> None:
        out = self._out()
        try:
            if not out.isatty():
                return
            if event.get("done"):
                if self._shown:
                    out.write("\r\x1b[2K")
                    out.flush()
                    self._shown = False
                return
            out.write("\r\x1b[2K" + format_event(event))
            out.flush()
            self._shown = True
        except (OSError, ValueError, AttributeError):
            # A closed or odd stream: progress is never worth an error.
            return


__all__ = ["ConsoleProgress", "ProgressCallback", "format_event"]
