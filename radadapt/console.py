"""One output sink for every command: rich tables and progress for people, JSON for machines.

Commands never ``print``: they call ``emit`` (a result), ``info``/``warn`` (status lines on stderr) and
``progress`` (a rich progress bar on stderr, silent with ``--json`` or when stderr is not a terminal and
``RADADAPT_PROGRESS=0``). Keeping stdout for results makes ``--json`` output pipeable.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

_state = {"json": False, "quiet": False}


def set_mode(*, json_output: bool = False, quiet: bool = False) -> None:
    _state["json"] = json_output
    _state["quiet"] = quiet


def json_mode() -> bool:
    return _state["json"]


def info(message: str) -> None:
    if not _state["quiet"]:
        stderr.print(message, highlight=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def emit(result: Any, *, table: Table | None = None, text: str | None = None) -> None:
    """Print a command's result: JSON in --json mode, else the table and/or text."""
    if _state["json"]:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
        return
    if table is not None:
        stdout.print(table)
    if text:
        stdout.print(text, highlight=False)


def make_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def _progress_enabled() -> bool:
    if _state["json"] or _state["quiet"]:
        return False
    return os.environ.get("RADADAPT_PROGRESS", "1") != "0"


class _NullProgress:
    def add_task(self, *_a: Any, **_k: Any) -> int:
        return 0

    def update(self, *_a: Any, **_k: Any) -> None:
        pass

    def advance(self, *_a: Any, **_k: Any) -> None:
        pass


@contextmanager
def progress(transient: bool = False) -> Iterator[Any]:
    """A rich progress bar on stderr (count, rate, ETA); a no-op object when progress is off."""
    if not _progress_enabled():
        yield _NullProgress()
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=transient,
    )
    with bar:
        yield _ProgressAdapter(bar)


class _ProgressAdapter:
    """Gives every task a ``status`` field so callers may omit it."""

    def __init__(self, bar: Progress):
        self._bar = bar

    def add_task(self, description: str, total: float | None = None, status: str = "", **kw: Any) -> int:
        return self._bar.add_task(description, total=total, status=status, **kw)

    def update(self, task: int, **kw: Any) -> None:
        self._bar.update(task, **kw)

    def advance(self, task: int, n: float = 1) -> None:
        self._bar.advance(task, n)
