"""The root ``inrstore`` typer app: global options and the command groups."""

from __future__ import annotations

import typer

from inrstore.cli.bench import bench
from inrstore.cli.codec import decode, encode

app = typer.Typer(
    name="inrstore",
    help="An image archive that stores pictures as tiny neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """An image archive that stores pictures as tiny neural networks."""


app.command()(encode)
app.command()(decode)
app.command()(bench)


def main() -> None:
    """Console-script entry point."""
    app()
