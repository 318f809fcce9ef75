"""Errors of the archive; each message is one line fit for the CLI."""


class StoreError(Exception):
    """Base class of every store error."""


class StoreNotFoundError(StoreError):
    """No store at the given path."""


class NotAStoreError(StoreError):
    """The path exists but is not an inrstore store."""


class StoreVersionError(StoreError):
    """The store was written by a newer inrstore."""


class UnknownIdError(StoreError, KeyError):
    """No member matches an id prefix or name."""

    def __str__(self) -> str:
        return str(self.args[0])


class AmbiguousIdError(StoreError, KeyError):
    """Several members match an id prefix or name; the message lists them."""

    def __str__(self) -> str:
        return str(self.args[0])


class CorruptRecordError(StoreError):
    """A stored record fails its checksum or does not parse."""


class StoreDamagedError(CorruptRecordError):
    """The store's database structure is damaged (not one record: its pages)."""


class StoreBusyError(StoreError):
    """Another process holds the store in a way that excludes this use."""
