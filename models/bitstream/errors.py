"""The one error type for bytes that cannot be decoded."""


class BitstreamError(ValueError):
    """Malformed, truncated, damaged or unsupported inrstore bytes. The message says which."""
