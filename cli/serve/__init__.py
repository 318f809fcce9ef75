"""The gateway: ``inrstore serve`` (HTTP, MQTT, a background encoder, a browse page)."""

MAX_UPLOAD_BYTES = 32 << 20
"""Largest frame the gateway accepts by default (bytes); larger ones get 413."""
