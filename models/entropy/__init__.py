"""Entropy model in float (training) and fixed point (coding), and the range-coder adapter."""
