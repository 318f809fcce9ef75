"""The gateway's HTTP API against a live server: ingestion, reading, listing, deleting,
statistics, and access control."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from .conftest import Gateway, frame_bytes, make_gateway

ENDPOINTS = [
    ("POST", "/v1/frames", "write"),
    ("GET", "/v1/frames", "read"),
    ("GET", "/v1/frames/" + "0" * 64, "read"),
    ("DELETE", "/v1/frames/" + "0" * 64, "write"),
    ("GET", "/v1/stats", "read"),
]


def post(gateway: Gateway, data: bytes, source: str = "cam1", **fields) -> httpx.Response:
    files = {"file": ("frame.png", data, "image/png")}
    form = {"source": source, **{k: str(v) for k, v in fields.items()}}
    return httpx.post(f"{gateway.url}/v1/frames", files=files, data=form,
                      headers=gateway.auth("write"))  # fmt: skip


def test_frames_are_staged_then_stored_and_read_back(gateway: Gateway) -> None:
    posted = [post(gateway, frame_bytes(i), captured_at=1000 + i) for i in range(5)]
    assert [r.status_code for r in posted] == [201] * 5
    ids = [r.json()["id"] for r in posted]
    assert all(r.json()["state"] == "staged" for r in posted)
    again = post(gateway, frame_bytes(0))
    assert again.status_code == 200 and again.json()["id"] == ids[0]
    raw = httpx.post(f"{gateway.url}/v1/frames", content=frame_bytes(9),
                     params={"source": "cam2", "captured_at": "2000"},
                     headers=gateway.auth("write"))  # fmt: skip
    assert raw.status_code == 201
    staged = httpx.get(f"{gateway.url}/v1/frames/{ids[4]}", headers=gateway.auth())
    assert staged.status_code == 200 and Image.open(io.BytesIO(staged.content)).size == (16, 16)
    gateway.wait_stored(6)
    stored = httpx.get(f"{gateway.url}/v1/frames/{ids[0]}",
                       params={"scale": 2, "format": "webp"}, headers=gateway.auth())  # fmt: skip
    assert stored.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(stored.content)).size == (32, 32)
    crop = httpx.get(f"{gateway.url}/v1/frames/{ids[1]}", params={"crop": "4,4,8,8"},
                     headers=gateway.auth())  # fmt: skip
    assert Image.open(io.BytesIO(crop.content)).size == (8, 8)
    listing = httpx.get(f"{gateway.url}/v1/frames", params={"source": "cam1", "limit": 2},
                        headers=gateway.auth()).json()  # fmt: skip
    assert [f["id"] for f in listing["frames"]] == [ids[4], ids[3]]
    assert {f["state"] for f in listing["frames"]} == {"stored"}
    rest = httpx.get(f"{gateway.url}/v1/frames",
                     params={"source": "cam1", "limit": 10, "cursor": listing["next"]},
                     headers=gateway.auth()).json()  # fmt: skip
    assert [f["id"] for f in rest["frames"]] == [ids[2], ids[1], ids[0]] and rest["next"] is None
    window = httpx.get(f"{gateway.url}/v1/frames", params={"since": 1001, "until": 1003},
                       headers=gateway.auth()).json()  # fmt: skip
    assert [f["captured_at"] for f in window["frames"]] == [1003, 1002, 1001]
    deleted = httpx.delete(f"{gateway.url}/v1/frames/{ids[2]}", headers=gateway.auth("write"))
    assert deleted.status_code == 204
    assert httpx.get(f"{gateway.url}/v1/frames/{ids[2]}", headers=gateway.auth()).status_code == 404
    stats = httpx.get(f"{gateway.url}/v1/stats", headers=gateway.auth()).json()
    assert stats["frames_stored"] == 5 and stats["sources"] == ["cam1", "cam2"]


@pytest.mark.parametrize(
    ("body", "params", "status", "message"),
    [
        (b"not an image", {"source": "cam1"}, 415, "not a recognised image format"),
        (frame_bytes(1)[:80], {"source": "cam1"}, 400, "damaged"),
        (b"", {"source": "cam1"}, 400, "empty file"),
        (frame_bytes(1), {}, 400, "'source'"),
        (frame_bytes(1), {"source": "bad source!"}, 400, "source must be"),
        (frame_bytes(1), {"source": "cam1", "captured_at": "yesterday"}, 400, ""),
        (b"x" * 2048, {"source": "cam1"}, 413, "at most 1024 bytes"),
    ],
)
def test_bad_frames_get_a_clear_status_and_are_not_staged(
    strict_gateway: Gateway, body: bytes, params: dict, status: int, message: str
) -> None:
    gateway = strict_gateway
    answer = httpx.post(f"{gateway.url}/v1/frames", content=body, params=params,
                        headers=gateway.auth("write"))  # fmt: skip
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    stats = httpx.get(f"{gateway.url}/v1/stats", headers=gateway.auth()).json()
    assert stats["frames_staged"] == stats["frames_stored"] == 0


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory) -> Iterator[Gateway]:
    """One server for every bad-input case: frames of at most 1024 bytes."""
    gateway = make_gateway(tmp_path_factory.mktemp("strict"), "--max-upload-bytes", "1024")
    gateway.start()
    yield gateway
    gateway.stop()


def test_every_endpoint_refuses_missing_and_wrong_scope_tokens(gateway: Gateway) -> None:
    for method, path, scope in ENDPOINTS:
        missing = httpx.request(method, gateway.url + path)
        assert missing.status_code == 401, (method, path)
        unknown = httpx.request(method, gateway.url + path, headers={"Authorization": "Bearer x"})
        assert unknown.status_code == 401, (method, path)
        wrong = "read" if scope == "write" else "write"
        refused = httpx.request(method, gateway.url + path, headers=gateway.auth(wrong))
        assert refused.status_code == 403, (method, path)
        assert f"{scope} is needed" in refused.json()["error"]
    assert httpx.get(f"{gateway.url}/healthz").json() == {"ok": True}
    assert "inrstore gateway" in httpx.get(gateway.url + "/").text
