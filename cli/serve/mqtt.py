"""MQTT ingestion: messages on a topic like ``cameras/+/frames`` (payload: an image file; the
``+`` level: the source) are staged, and acknowledged to the broker (QoS 1) only once
staging has committed. The session is persistent (a fixed client id, no clean start), so
messages published while the gateway was down arrive when it is back."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from inrstore.datasets import ImageError
from inrstore.store import Store, StoreError

log = logging.getLogger("inrstore.serve")


def source_of(topic_filter: str, topic: str) -> str | None:
    """The level of ``topic`` where ``topic_filter`` has ``+`` (None if it has none)."""
    levels = topic_filter.split("/")
    if "+" not in levels:
        return None
    parts = topic.split("/")
    index = levels.index("+")
    return parts[index] if index < len(parts) else None


class MqttIngest:
    """A subscriber that stages every message of ``topic`` into ``store``."""

    def __init__(self, store: Store, url: str, topic: str) -> None:
        address = urlparse(url if "://" in url else f"mqtt://{url}")
        if address.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"--mqtt must be mqtt://[user:password@]host[:port], not {url!r}")
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 1883
        self.store, self.topic = store, topic
        client_id = (
            "inrstore-" + hashlib.sha256(str(store.path.resolve()).encode()).hexdigest()[:16]
        )
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
            manual_ack=True,
        )  # fmt: skip
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        source = source_of(self.topic, message.topic) or "mqtt"
        try:
            self.store.frames.stage(message.payload, source)
        except (ImageError, ValueError) as err:
            log.warning("refused a frame on %s: %s", message.topic, err)
        except StoreError as err:  # not acknowledged: the broker delivers it again
            log.error("could not stage a frame on %s: %s", message.topic, err)
            return
        client.ack(message.mid, message.qos)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
