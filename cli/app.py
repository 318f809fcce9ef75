"""The root ``inrstore`` typer app: global options and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inrstore.cli.bench import bench, bench_store, bench_store_merge
from inrstore.cli.codec import decode, encode
from inrstore.cli.serve.command import serve, token
from inrstore.cli.store import COMMANDS as STORE_COMMANDS

DEFAULT_STORE = "inrstore.lmdb"

app = typer.Typer(
    name="inrstore",
    help="An image archive that stores pictures as tiny neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    store: Annotated[
        Path,
        typer.Option(
            envvar="INRSTORE_STORE",
            help="Store folder for the store commands (default ./inrstore.lmdb).",
        ),
    ] = Path(DEFAULT_STORE),
) -> None:
    """An image archive that stores pictures as tiny neural networks."""
    ctx.obj = {"store": store}


app.command()(encode)
app.command()(decode)
app.command()(bench)
app.command(name="bench-store")(bench_store)
app.command(name="bench-store-merge")(bench_store_merge)
for command in STORE_COMMANDS:
    app.command()(command)
app.command()(serve)
app.add_typer(token, name="token")


def main() -> None:
    """Console-script entry point."""
    app()
