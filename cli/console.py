"""The one rich console of the CLI, progress bars and one-line errors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from inrstore.models.render import Crop

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def check_device(device: str) -> None:
    """The ``--device`` option: ``cpu``, or ``cuda`` where a CUDA device is present; anything
    else exits with status 2."""
    if device not in ("cpu", "cuda"):
        raise fail(f"unknown device {device!r}; use cpu or cuda", 2)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise fail("device 'cuda' was asked for but no CUDA device is available", 2)


def parse_crop(text: str | None) -> Crop | None:
    """The ``--crop x,y,w,h`` option; a malformed value exits with status 2."""
    if not text:
        return None
    try:
        return Crop.parse(text)
    except ValueError as err:
        raise fail(str(err), 2) from None


def progress_bar() -> Progress:
    """A progress bar with a description, count, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


def problems_table(problems: list[tuple[Path, str]], title: str) -> Table:
    """A table of ``(path, reason)`` rows."""
    table = Table(title=title, title_justify="left")
    table.add_column("file")
    table.add_column("reason")
    for path, reason in problems:
        table.add_row(str(path), reason)
    return table
