"""A progress display a person can read on a terminal (rich); silent everywhere else.

Per file: the bytes read, the rate and an ETA; then the stage a site-run is in (validate, decide
and commit). Only on a terminal: a log, a pipe or Airflow sees exactly what it saw before.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Display:
    """`with Display(enabled) as d:` then `d.file(name, size)`, `d.advance(bytes_done)`, `d.stage(name)`."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Display:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False)
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._finish()
        if self._progress is not None:
            self._progress.stop()

    def _finish(self) -> None:
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[-1]
            if task.total is not None:
                self._progress.update(self._task, completed=task.total)
            self._progress.stop_task(self._task)
        self._task = None

    def file(self, name: str, size: int) -> None:
        """A file starts being read (its size on disk: for a .gz, the compressed bytes)."""
        if self._progress is not None:
            self._finish()
            self._task = self._progress.add_task(f"reading {name}", total=max(size, 1))

    def advance(self, done: int, **_: Any) -> None:
        """Bytes of the current file read so far (from disk)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)

    def stage(self, name: str) -> None:
        """A stage that has no byte count (validate, decide and commit): shown with its elapsed time."""
        if self._progress is not None:
            self._finish()
            self._task = self._progress.add_task(name, total=None)
