"""Explicit byte formats: header fields, parameter and latent sections, checksums."""
