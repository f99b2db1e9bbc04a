"""Reading a zip of photos safely: every entry is checked before a byte of it is used.

Entries are read into memory (never extracted), so a hostile name cannot write anywhere; such names are
still refused, as are too many entries, oversized entries, a suspicious compression ratio (zip bombs) and
encrypted entries. Each photo then goes through ``images.load`` like any upload.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pillcheck import images

MAX_ENTRIES = 100
MAX_ENTRY_BYTES = images.MAX_BYTES
MAX_TOTAL_BYTES = 400 * 2**20
MAX_RATIO = 100  # uncompressed / compressed; photos barely compress, a bomb compresses ~1000x
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".bmp", ".gif", ".tif", ".tiff"}
JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")


@dataclass
class Entry:
    name: str
    data: bytes | None
    error: images.InputError | None = None  # why it is not analysed


def unsafe_name(name: str) -> bool:
    """Absolute paths, drive letters, '..' parts, backslashes and control characters."""
    if not name or "\\" in name or any(ord(ch) < 32 for ch in name):
        return True
    path = PurePosixPath(name)
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


def _problem(info: zipfile.ZipInfo) -> images.InputError | None:
    if unsafe_name(info.filename):
        return images.InputError("unsafe_name")
    if info.flag_bits & 0x1:
        return images.InputError("encrypted")
    if PurePosixPath(info.filename).suffix.lower() not in PHOTO_SUFFIXES:
        return images.InputError("not_photo_name")
    if info.file_size > MAX_ENTRY_BYTES:
        return images.InputError("entry_large", mb=round(info.file_size / 2**20), limit=round(MAX_ENTRY_BYTES / 2**20))
    if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return images.InputError("zip_bomb")
    return None


class PhotoZip:
    """The photos in a zip: checked as a whole on opening, then read one Entry at a time (data, or why not).

    Opening raises ``images.InputError`` when the archive itself is unusable (not a zip, too many entries, too
    large unpacked); a problem with one entry is reported on that entry and never stops the batch.
    """

    def __init__(self, path: str | Path | BinaryIO) -> None:
        """``path``: the zip's path, or its bytes as a file object (a batch engine that read the file already)."""
        if not zipfile.is_zipfile(path):
            raise images.InputError("not_zip")
        try:
            self._zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise images.InputError("zip_damaged", kind=exc.__class__.__name__) from exc
        self.infos = [i for i in self._zf.infolist() if not i.is_dir() and not any(j in i.filename for j in JUNK)
                      and not PurePosixPath(i.filename).name.startswith("._")]
        total = sum(i.file_size for i in self.infos)
        if len(self.infos) > MAX_ENTRIES:
            self.close()
            raise images.InputError("zip_entries", n=len(self.infos), limit=MAX_ENTRIES)
        if total > MAX_TOTAL_BYTES:
            self.close()
            raise images.InputError("zip_total", mb=round(total / 2**20), limit=round(MAX_TOTAL_BYTES / 2**20))

    def __len__(self) -> int:
        return len(self.infos)

    def __iter__(self) -> Iterator[Entry]:
        for info in self.infos:
            yield self._read(info)

    def _read(self, info: zipfile.ZipInfo) -> Entry:
        problem = _problem(info)
        if problem:
            return Entry(info.filename, None, problem)
        try:
            with self._zf.open(info) as f:
                data = f.read(MAX_ENTRY_BYTES + 1)  # the header's size may lie: never read past the limit
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
            return Entry(info.filename, None, images.InputError("unpack", kind=exc.__class__.__name__))
        if len(data) > MAX_ENTRY_BYTES:
            return Entry(info.filename, None, images.InputError("header_lies"))
        return Entry(info.filename, data)

    def close(self) -> None:
        self._zf.close()

    def __enter__(self) -> PhotoZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
