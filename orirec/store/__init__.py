"""The Zarr projection store (DESIGN §4): schema, one-writer-per-shard writer, reader, pair sampling."""

from orirec.store.reader import ProjectionStore, open_store, reference_volume
from orirec.store.schema import CTF_COLUMNS, PER_IMAGE_ARRAYS, n_shards, shard_rows
from orirec.store.writer import StoreWriter, create_store, writer_to_resume

__all__ = [
    "CTF_COLUMNS",
    "PER_IMAGE_ARRAYS",
    "ProjectionStore",
    "StoreWriter",
    "writer_to_resume",
    "create_store",
    "n_shards",
    "open_store",
    "reference_volume",
    "shard_rows",
]
