"""Persistence behind a small interface. SQLite is the default (and, for now, only) backend."""

from .sqlite import SQLiteStore

__all__ = ["SQLiteStore", "open_store"]


def open_store(db_url: str) -> SQLiteStore:
    if db_url.startswith("sqlite:///"):
        return SQLiteStore(db_url[len("sqlite:///"):])
    raise ValueError(f"Unsupported db_url {db_url!r}: use sqlite:///PATH")
