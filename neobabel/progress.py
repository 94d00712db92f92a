"""The one progress display of long loops: a rich bar on a terminal, plain lines in a log.

    with progress_bar("generating", total=len(todo), unit="img") as advance:
        for batch in batches:
            ...
            advance(len(batch))

On a terminal (stderr is a TTY) it draws a rich bar. Anywhere else (`cmd > log 2>&1`, a batch
job, a CI log) it writes a plain line at the start, whenever `every_seconds` have passed or the
work crosses another tenth, and at the end:

    generating 120/3240 (3.7%) 2.10 img/s, ETA 25 min

The rate is always completed / elapsed since the start (not a moving window), the same formula
as a command's final summary (`rate_text`), so the bar and the summary agree.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

Advance = Callable[[int], None]


def rate_text(count: int, seconds: float, unit: str) -> str:
    """'2.10 img/s' (or '-- img/s' before anything is done): the bar's and the summaries' rate."""
    if count <= 0 or seconds <= 0:
        return f"-- {unit}/s"
    return f"{count / seconds:.2f} {unit}/s"


def duration_text(seconds: float) -> str:
    """A rough human duration: '40 s', '25 min', '3.2 h'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def stderr_is_terminal() -> bool:
    from rich.console import Console  # heavy-ish: rich loads only where a display is asked for

    return Console(stderr=True).is_terminal


class progress_bar:
    """Context manager yielding `advance(n)`; a no-op when disabled or when there is nothing to do.

    `started`: the clock value (time.perf_counter) the rate counts from, when the caller's own
    summary measures from an earlier point. `done`: work finished before (a resumed run): shown
    in the counts, left out of the rate and the ETA. `detail`: extra text for each line (e.g.
    the last loss). `terminal`: force the rich bar (True) or the plain lines (False); default:
    whether stderr is a terminal.
    """

    def __init__(self, what: str, total: int, *, enabled: bool = True, unit: str = "img",
                 every_seconds: float = 10.0, started: float | None = None, done: int = 0,
                 detail: Callable[[], str] | None = None, terminal: bool | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.what, self.total, self.unit = what, int(total), unit
        self.done_before = int(done)
        self.detail = detail
        self.enabled = enabled and self.total > self.done_before
        self.every_seconds = every_seconds
        self.clock = clock
        self.started = started
        self.terminal = terminal
        self.completed = 0
        self._rich = None
        self._last_line_at = 0.0
        self._last_tenth = (10 * self.done_before) // max(self.total, 1)

    # -- numbers shared by both displays ---------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self) -> str:
        """'generating 120/3240 (3.7%) 2.10 img/s, ETA 25 min' (the plain display's line)."""
        elapsed = self.elapsed()
        position = self.done_before + self.completed
        share = 100.0 * position / self.total
        text = f"{self.what} {position}/{self.total} ({share:.1f}%) {rate_text(self.completed, elapsed, self.unit)}"
        if self.detail is not None:
            text += f", {self.detail()}"
        if position >= self.total:
            return f"{text}, done in {duration_text(elapsed)}"
        if self.completed > 0:
            eta = elapsed / self.completed * (self.total - position)
            return f"{text}, ETA {duration_text(eta)}"
        return text

    # -- context manager --------------------------------------------------------------------
    def __enter__(self) -> Advance:
        if not self.enabled:
            return lambda n: None
        if self.started is None:
            self.started = self.clock()
        terminal = stderr_is_terminal() if self.terminal is None else self.terminal
        if terminal:
            self._start_rich()
        else:
            self._print_line()
        return self.advance

    def advance(self, n: int) -> None:
        self.completed += int(n)
        if self._rich is not None:
            progress, task = self._rich
            progress.advance(task, n)
            return
        position = self.done_before + self.completed
        tenth = (10 * position) // self.total
        if tenth > self._last_tenth or self.clock() - self._last_line_at >= self.every_seconds:
            self._last_tenth = tenth
            if position < self.total:  # the last line comes from __exit__
                self._print_line()

    def __exit__(self, *exc) -> bool:
        if not self.enabled:
            return False
        if self._rich is not None:
            self._rich[0].__exit__(*exc)
        else:
            self._print_line()
        return False

    # -- the two displays ---------------------------------------------------------------------
    def _print_line(self) -> None:
        self._last_line_at = self.clock()
        print(self.line(), file=sys.stderr, flush=True)

    def _start_rich(self) -> None:
        # rich loads only when a live bar is drawn (a terminal); logs and library use never need it.
        from rich.console import Console  # deferred: rich, only for the live bar
        from rich.progress import (  # deferred: rich, only for the live bar
            BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text  # deferred: rich, only for the live bar

        bar = self

        class Rate(ProgressColumn):  # the cumulative rate, as in the summaries
            def render(self, task):
                text = rate_text(bar.completed, bar.elapsed(), bar.unit)
                return Text(f"{text}, {bar.detail()}" if bar.detail is not None else text)

        progress = Progress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(), Rate(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
        progress.__enter__()
        self._rich = (progress, progress.add_task(self.what, total=self.total, completed=self.done_before))


def progress_callback(what: str, *, enabled: bool = True, unit: str = "img") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """For library loops that report `progress(done, total)`: (callback, close).

    The bar starts at the first call (when the total is known); call `close()` afterwards.
    """
    state: dict = {}

    def report(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = progress_bar(what, total, enabled=enabled, unit=unit)
            state["advance"] = state["bar"].__enter__()
        state["advance"](done - state["bar"].completed)

    def close() -> None:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)

    return report, close
