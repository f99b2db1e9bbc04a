"""Opening the catalog: one read-only DuckDB connection per process, shared by request threads via cursors."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from pillcheck.catalog.identify import CandidateIndex
from pillcheck.catalog.search import SearchIndex
from pillcheck.catalog.status import StatusIndex
from pillcheck.inference.session import Lazy
from pillcheck.safety.dur import DurIndex


class CatalogMissing(FileNotFoundError):
    """No catalog database at the given path."""


class CatalogError(RuntimeError):
    """A file that is not a pillcheck catalog (or a damaged one)."""


class Catalog:
    """A built catalog file. Indexes that serve every request (DUR, search) load once, lazily, under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._dur = Lazy(lambda: DurIndex(self.cursor()))
        self._search = Lazy(lambda: SearchIndex(self.cursor()))
        self._candidates = Lazy(lambda: CandidateIndex(self.cursor()))
        self._status = Lazy(lambda: StatusIndex(self.cursor()))
        if not self.path.is_file():
            raise CatalogMissing(
                f"no catalog at {self.path}: build one with `pillcheck data import DIR` "
                "(official files) or `pillcheck data demo` (the small demo fixture)"
            )
        try:
            self._con = duckdb.connect(str(self.path), read_only=True)
            meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        except duckdb.Error as exc:
            raise CatalogError(f"{self.path} is not a pillcheck catalog ({exc.__class__.__name__}: {exc})") from exc
        self.meta = meta
        self.data = meta.get("data", "unknown")
        self.mtime = self.path.stat().st_mtime_ns

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for this thread: DuckDB connections are not shared across threads, cursors are cheap."""
        return self._con.cursor()

    @property
    def dur(self) -> DurIndex:
        return self._dur.get()

    @property
    def search(self) -> SearchIndex:
        return self._search.get()

    @property
    def candidates(self) -> CandidateIndex:
        return self._candidates.get()

    @property
    def status(self) -> StatusIndex:
        """Market status and recalls of products (``catalog.status``)."""
        return self._status.get()

    def close(self) -> None:
        self._con.close()


_open: dict[Path, Catalog] = {}
_open_lock = threading.Lock()


def open_catalog(path: Path) -> Catalog:
    """The process-wide Catalog for ``path`` (reopened when the file was swapped by an import).

    DuckDB keeps one database instance per path for as long as a connection to it is open, so the old
    connection is closed before the new file is opened; otherwise the swapped-in file would never be read.
    Indexes already built from the old file stay usable by requests still holding them."""
    path = Path(path).resolve()
    with _open_lock:
        cat = _open.get(path)
        if cat is None or not path.exists() or cat.mtime != path.stat().st_mtime_ns:
            if cat is not None:
                cat.close()
            cat = _open[path] = Catalog(path)
        return cat
