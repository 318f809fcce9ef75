"""MQTT ingestion against a real mosquitto broker: frames on ``cameras/+/frames`` are
staged under the topic's source, bad payloads are not, and frames published while the
gateway is down arrive when it is back (QoS 1, persistent session)."""

from __future__ import annotations

import time

import httpx
import paho.mqtt.client as mqtt

from inrstore.cli.serve.mqtt import source_of

from .conftest import Gateway, frame_bytes, make_gateway


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="camera")
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    client.loop_stop()
    client.disconnect()


def wait_frames(gateway: Gateway, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = httpx.get(f"{gateway.url}/v1/frames", params={"limit": 100},
                           headers=gateway.auth()).json()["frames"]  # fmt: skip
        if len(frames) >= count:
            return frames
        time.sleep(0.3)
    raise AssertionError(f"{len(frames)} of {count} frames arrived")


def test_source_is_the_plus_level_of_the_topic() -> None:
    assert source_of("cameras/+/frames", "cameras/gate-2/frames") == "gate-2"
    assert source_of("frames", "frames") is None


def test_frames_published_over_mqtt_are_staged_and_acknowledged(tmp_path, mosquitto) -> None:
    gateway = make_gateway(tmp_path, "--mqtt", f"mqtt://127.0.0.1:{mosquitto}",
                           "--shard-frames", "100", "--shard-seconds", "600")  # fmt: skip
    gateway.start()
    try:
        time.sleep(1.0)  # the subscription is made once connected
        publish(mosquitto, [("cameras/gate/frames", frame_bytes(i)) for i in range(3)]
                + [("cameras/gate/frames", b"not an image")])  # fmt: skip
        frames = wait_frames(gateway, 3)
        assert {f["source"] for f in frames} == {"gate"} and len(frames) == 3
        gateway.stop()
        publish(mosquitto, [("cameras/yard/frames", frame_bytes(10))])  # while it is down
        gateway.start()
        frames = wait_frames(gateway, 4)
        assert sorted(f["source"] for f in frames) == ["gate", "gate", "gate", "yard"]
    finally:
        gateway.stop()
