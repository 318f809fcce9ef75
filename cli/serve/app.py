"""The gateway's HTTP API and browse page (Starlette), over :class:`~inrstore.store.Store`.

Every endpoint but ``/healthz`` and the page itself needs ``Authorization: Bearer TOKEN``
(``read`` scope for GET, ``write`` for POST and DELETE) unless the server runs with
``--no-auth``: no token is 401, a token of the wrong scope 403.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from inrstore.cli.serve import MAX_UPLOAD_BYTES
from inrstore.datasets import ImageError, ImageTooLargeError, UnsupportedFormatError
from inrstore.datasets.load import load_image_bytes, to_pil_image
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.render import Crop
from inrstore.store import Store, StoreError, UnknownIdError

PAGE = Path(__file__).with_name("page.html")
FORMATS = {"png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp"),
           "jpeg": ("JPEG", "image/jpeg")}  # fmt: skip


@dataclass(frozen=True)
class ServeSettings:
    """The API's own settings (the encoder has :class:`~.encoder.EncoderSettings`)."""

    auth: bool = True
    max_upload_bytes: int = MAX_UPLOAD_BYTES


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Api:
    """Request handlers over one open store."""

    def __init__(self, store: Store, settings: ServeSettings) -> None:
        self.store, self.settings = store, settings
        self.started = time.time()
        self.stored_at_start = store.frames.stats()["frames_stored"]

    def guarded(self, scope: str, handler):
        """``handler`` behind the token check of ``scope``."""

        async def checked(request: Request) -> Response:
            return self._refused(request, scope) or await handler(request)

        return checked

    def _refused(self, request: Request, scope: str) -> Response | None:
        """The 401/403 response for a request without the token ``scope`` needs, else None."""
        if not self.settings.auth:
            return None
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not token:
            return _error(401, "a token is required (Authorization: Bearer TOKEN)")
        granted = self.store.frames.token_scope(token)
        if granted is None:
            return _error(401, "unknown token")
        if granted != scope:
            return _error(403, f"this token's scope is {granted}; {scope} is needed")
        return None

    async def post_frame(self, request: Request) -> Response:
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.settings.max_upload_bytes:
            return _error(413, f"a frame may have at most {self.settings.max_upload_bytes} bytes")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_part_size=self.settings.max_upload_bytes)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return _error(400, "the form needs a 'file' field with the image")
            data = await upload.read()
            source, captured = form.get("source"), form.get("captured_at")
        else:
            data = await request.body()
            source = request.query_params.get("source")
            captured = request.query_params.get("captured_at")
        if len(data) > self.settings.max_upload_bytes:
            return _error(413, f"a frame may have at most {self.settings.max_upload_bytes} bytes")
        if not source:
            return _error(400, "a 'source' (camera id) is required")
        try:
            captured_at = None if captured in (None, "") else float(captured)
            staged = await run_in_threadpool(
                self.store.frames.stage, data, str(source), captured_at
            )
        except UnsupportedFormatError as err:
            return _error(415, err.reason)
        except ImageTooLargeError as err:
            return _error(413, err.reason)
        except ImageError as err:
            return _error(400, err.reason)
        except ValueError as err:
            return _error(400, str(err))
        if staged.created:
            return JSONResponse({"id": staged.id, "state": "staged"}, status_code=201)
        return JSONResponse({"id": staged.id, "state": self.store.frames.info(staged.id).state})

    async def get_frame(self, request: Request) -> Response:
        hex_id = request.path_params["frame"]
        query = request.query_params
        name = (query.get("format") or "png").lower()
        if name not in FORMATS:
            return _error(400, f"unknown format {name!r}; use png, webp or jpeg")
        try:
            scale = float(query.get("scale") or 1.0)
            crop = Crop.parse(query["crop"]) if query.get("crop") else None
            body = await run_in_threadpool(self._render, hex_id, scale, crop, FORMATS[name][0])
        except UnknownIdError as err:
            return _error(404, str(err))
        except (ValueError, ImageError) as err:
            return _error(400, str(err))
        except (StoreError, BitstreamError) as err:
            return _error(500, str(err))
        return Response(body, media_type=FORMATS[name][1])

    def _render(self, hex_id: str, scale: float, crop: Crop | None, pillow_format: str) -> bytes:
        info = self.store.frames.info(hex_id)
        if info.state == "stored":
            image = to_pil_image(self.store.get(hex_id, scale, crop))
        else:
            image = _from_original(self.store.frames.staged_bytes(hex_id), scale, crop)
        if pillow_format == "JPEG" and image.mode == "RGBA":
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format=pillow_format)
        return buffer.getvalue()

    async def list_frames(self, request: Request) -> Response:
        query = request.query_params
        try:
            since = float(query["since"]) if query.get("since") else None
            until = float(query["until"]) if query.get("until") else None
            limit = int(query.get("limit") or 50)
            page, following = await run_in_threadpool(
                self.store.frames.list, query.get("source"), since, until, limit,
                query.get("cursor"),
            )  # fmt: skip
        except ValueError as err:
            return _error(400, str(err))
        return JSONResponse({"frames": [info.to_json() for info in page], "next": following})

    async def delete_frame(self, request: Request) -> Response:
        if not await run_in_threadpool(self.store.frames.delete, request.path_params["frame"]):
            return _error(404, "no such frame")
        return Response(status_code=204)

    async def stats(self, request: Request) -> Response:
        stats = await run_in_threadpool(self.store.frames.stats)
        minutes = max(1e-9, (time.time() - self.started) / 60)
        stats["encode_rate_per_minute"] = (stats["frames_stored"] - self.stored_at_start) / minutes
        return JSONResponse(stats)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE.read_text())


def _from_original(data: bytes | None, scale: float, crop: Crop | None) -> Image.Image:
    """A staged frame's pixels at ``scale`` (bicubic) inside ``crop``, like a stored one's."""
    if data is None:
        raise UnknownIdError("the frame was stored or removed meanwhile; ask again")
    if not 1 / 16 <= scale <= 8:
        raise ValueError(f"scale must be in [1/16, 8], not {scale}")
    image = to_pil_image(load_image_bytes(data, "staged frame").pixels)
    if crop is not None:
        inside = crop.x + crop.w <= image.width and crop.y + crop.h <= image.height
        if not inside or min(crop.w, crop.h) < 1 or min(crop.x, crop.y) < 0:
            raise ValueError(f"crop {crop.x},{crop.y},{crop.w},{crop.h} is outside the frame")
        image = image.crop((crop.x, crop.y, crop.x + crop.w, crop.y + crop.h))
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def create_app(store: Store, settings: ServeSettings, lifespan=None) -> Starlette:
    """The Starlette application over an open ``store``."""
    api = Api(store, settings)
    routes = [
        Route("/", api.page),
        Route("/healthz", api.health),
        Route("/v1/stats", api.guarded("read", api.stats)),
        Route("/v1/frames", api.guarded("write", api.post_frame), methods=["POST"]),
        Route("/v1/frames", api.guarded("read", api.list_frames), methods=["GET"]),
        Route("/v1/frames/{frame}", api.guarded("read", api.get_frame), methods=["GET"]),
        Route("/v1/frames/{frame}", api.guarded("write", api.delete_frame), methods=["DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
