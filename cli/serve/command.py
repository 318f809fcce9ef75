"""``inrstore serve`` and ``inrstore token``: the gateway's commands."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from inrstore.cli.console import console, fail
from inrstore.cli.serve import MAX_UPLOAD_BYTES
from inrstore.models.fit.presets import DEFAULT_QUALITY, PRESETS
from inrstore.models.shard_codec import SHARING_MODES
from inrstore.store import Store, StoreError


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8080,
    mqtt: Annotated[
        str | None, typer.Option(help="Broker to subscribe to: mqtt://[user:pass@]host[:port].")
    ] = None,
    mqtt_topic: Annotated[str, typer.Option(help="Topic; its + level is the source.")] = (
        "cameras/+/frames"
    ),
    preset: Annotated[str, typer.Option(help=f"Encoder effort: {', '.join(PRESETS)}.")] = "fast",
    quality: Annotated[float, typer.Option(min=0, max=100)] = DEFAULT_QUALITY,
    shard_frames: Annotated[
        int, typer.Option(min=1, help="Encode a source's frames once this many wait.")
    ] = 16,
    shard_seconds: Annotated[
        float, typer.Option(min=0, help="...or once the oldest has waited this long.")
    ] = 60.0,
    retain_days: Annotated[
        float | None, typer.Option(min=0, help="Remove frames captured longer ago.")
    ] = None,
    max_bytes: Annotated[
        int | None, typer.Option(min=0, help="Remove the oldest frames beyond this many bytes.")
    ] = None,
    retain_per_source: Annotated[
        bool, typer.Option(help="Apply --retain-days and --max-bytes to each source alone.")
    ] = False,
    time_limit: Annotated[
        float | None, typer.Option(min=0.1, help="Training seconds of a 256×256 frame.")
    ] = None,
    sharing: Annotated[
        str,
        typer.Option(
            help="What a shard of a source's frames shares (as add's --sharing); latents: "
            "networks and latent grids, started from the source's previous shard."
        ),
    ] = "auto",
    max_upload_bytes: Annotated[
        int, typer.Option(min=1, help="Largest frame accepted (bytes); larger ones get 413.")
    ] = MAX_UPLOAD_BYTES,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without tokens (trusted networks only).")
    ] = False,
) -> None:
    """Ingest camera frames over HTTP (and MQTT), encode them in the background, serve them."""
    try:
        import uvicorn

        from inrstore.cli.serve.app import ServeSettings, create_app
        from inrstore.cli.serve.encoder import EncoderProcess, EncoderSettings
        from inrstore.cli.serve.mqtt import MqttIngest
    except ImportError as err:
        message = f"serve needs its extra ({err.name} is missing): pip install 'inrstore[serve]'"
        raise fail(message) from None
    if preset not in PRESETS:
        raise fail(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", 2)
    if sharing not in SHARING_MODES:
        raise fail(f"unknown sharing {sharing!r}; use {', '.join(SHARING_MODES)}", 2)
    try:
        store = Store.open(ctx.obj["store"], create=True)
    except StoreError as err:
        raise fail(str(err)) from None
    settings = EncoderSettings(
        store.path, preset, quality, shard_frames, shard_seconds, retain_days, max_bytes,
        retain_per_source, time_limit, sharing,
    )  # fmt: skip
    encoder = EncoderProcess(settings)
    try:
        ingest = MqttIngest(store, mqtt, mqtt_topic) if mqtt else None
    except ValueError as err:
        store.close()
        raise fail(str(err), 2) from None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        encoder.start()
        if ingest is not None:
            ingest.start()
        yield
        if ingest is not None:
            ingest.stop()
        encoder.close()

    app = create_app(store, ServeSettings(not no_auth, max_upload_bytes), lifespan)
    console.print(f"serving {store.path} on http://{host}:{port}/" + (" (no auth)" * no_auth))
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.close()


token = typer.Typer(help="API tokens of the gateway (stored hashed in the store).")


@token.command("create")
def create_token(
    ctx: typer.Context,
    scope: Annotated[str, typer.Option(help="read (GET) or write (POST, DELETE).")] = "read",
    label: Annotated[str, typer.Option(help="A note to recognise the token by.")] = "",
) -> None:
    """Create a token and print it (shown only this once)."""
    if scope not in ("read", "write"):
        raise fail(f"unknown scope {scope!r}; use read or write", 2)
    try:
        with Store.open(ctx.obj["store"], create=True) as store:
            print(store.frames.create_token(scope, label))
    except StoreError as err:
        raise fail(str(err)) from None
