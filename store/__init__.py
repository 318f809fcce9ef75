"""The archive: LMDB index, shards and records (see the store issue)."""
