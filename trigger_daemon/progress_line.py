"""The progress line of the foreground commands (`backtest`, `backfill --wait`) on stderr:
records read / total and what else the command counts, as a bar redrawn in place on a
terminal, or a plain line a second into a pipe or a file (and a last one at the end).

Each command says how to read its figures off what it follows (`Figures`); this module owns
when to draw and how the line looks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TextIO, TypeVar

Followed = TypeVar("Followed")
# Records read, records to read (an estimate, at least those read) and the rest of the line,
# from what is followed and the seconds since the line began.
Figures = Callable[[Followed, float], tuple[int, int, str]]

_REDRAW_SECONDS = 0.1  # on a terminal
_LINE_SECONDS = 1.0  # into a pipe or a file: one line a second
_BAR_WIDTH = 30


class ProgressLine(Generic[Followed]):
    def __init__(self, stream: TextIO, label: str, figures: Figures[Followed]) -> None:
        """`label` starts each plain line; a terminal shows the bar instead."""
        self._stream = stream
        self._label = label
        self._figures = figures
        self._terminal = stream.isatty()
        self._started = time.monotonic()
        self._shown_at = self._started

    def update(self, followed: Followed) -> None:
        now = time.monotonic()
        if now - self._shown_at >= (_REDRAW_SECONDS if self._terminal else _LINE_SECONDS):
            self._show(followed, now)

    def finish(self, followed: Followed) -> None:
        self._show(followed, time.monotonic())
        if self._terminal:
            self._stream.write("\n")
            self._stream.flush()

    def _show(self, followed: Followed, now: float) -> None:
        self._shown_at = now
        read, total, rest = self._figures(followed, now - self._started)
        share = read / total if total else 1.0
        figures = f"{read:,} / {total:,} records ({share:.0%}), {rest}"
        if self._terminal:
            filled = int(share * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            self._stream.write(f"\r[{bar}] {figures}  ")
        else:
            self._stream.write(f"{self._label} {figures}\n")
        self._stream.flush()
