"""Encoder-side fitting: presets, quantization schedules, training, network quantization."""
