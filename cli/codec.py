"""``inrstore encode`` and ``inrstore decode``: one image to and from a bitstream file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inrstore.cli.console import check_device, console, fail, parse_crop, progress_bar
from inrstore.datasets import ImageError, load_image
from inrstore.datasets.load import to_pil_image
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.fit.presets import DEFAULT_QUALITY, PRESETS
from inrstore.models.metrics import bpp, psnr


def encode(
    source: Annotated[Path, typer.Argument(help="Image to compress.")],
    target: Annotated[Path, typer.Argument(help="Bitstream file to write (.inr).")],
    preset: Annotated[str, typer.Option(help=f"Encoder effort: {', '.join(PRESETS)}.")] = "default",
    quality: Annotated[
        float, typer.Option(min=0, max=100, help="0 (smallest) … 100 (best quality).")
    ] = DEFAULT_QUALITY,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    time_limit: Annotated[
        float | None, typer.Option(min=1, help="Stop training after this many seconds.")
    ] = None,
) -> None:
    """Compress one image into an inrstore bitstream, showing the training progress."""
    if preset not in PRESETS:
        raise fail(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", 2)
    check_device(device)
    try:
        image = load_image(source)
    except ImageError as err:
        raise fail(str(err)) from None
    with progress_bar() as progress:
        task = progress.add_task("training", total=1.0, status="")

        def show(status) -> None:
            text = (
                f"it {status.iteration} loss {status.loss:.5f} "
                f"{status.psnr:.2f} dB {status.bpp:.3f} bpp"
            )
            progress.update(task, completed=status.progress, status=text)

        try:
            data = encode_image(
                image.pixels,
                preset,
                quality,
                device=device,
                time_limit=time_limit,
                on_status=show,
            )
        except ValueError as err:
            raise fail(str(err), 2) from None
        except ChildProcessError as err:
            raise fail(str(err)) from None
    try:
        target.write_bytes(data)
    except OSError as err:
        raise fail(f"{target}: cannot write ({err.strerror})") from None
    decoded = decode_image(data)
    console.print(
        f"{target}: {len(data)} bytes, {bpp(len(data), image.height, image.width):.3f} bpp, "
        f"{psnr(image.pixels, decoded):.2f} dB"
    )


def decode(
    source: Annotated[Path, typer.Argument(help="Bitstream file (.inr).")],
    target: Annotated[Path, typer.Argument(help="Image to write (format from the suffix).")],
    scale: Annotated[
        float, typer.Option(min=1 / 16, max=8, help="Output size factor, 1/16 … 8.")
    ] = 1.0,
    crop: Annotated[
        str | None, typer.Option(help="x,y,w,h box in original pixels (decoded at --scale).")
    ] = None,
) -> None:
    """Decode a bitstream at any scale, or only a crop of it."""
    box = parse_crop(crop)
    try:
        data = source.read_bytes()
    except OSError as err:
        raise fail(f"{source}: cannot read ({err.strerror})") from None
    try:
        pixels = decode_image(data, scale, box)
    except BitstreamError as err:
        raise fail(f"{source}: {err}") from None
    except ValueError as err:
        raise fail(str(err), 2) from None
    try:
        to_pil_image(pixels).save(target)
    except (OSError, ValueError, KeyError) as err:
        raise fail(f"{target}: cannot write ({err})") from None
    console.print(f"{target}: {pixels.shape[1]}x{pixels.shape[0]}, {pixels.shape[2]} channels")
