"""What `pillcheck batch` reads: folders, zips, globs and files -> the files to read -> one Photo per photo.

A file is read once (by the local engine, or by Ray's ``read_binary_files``); ``photos`` then turns its bytes
into photos: itself, or each entry of a zip (checked like the app's zip upload, ``batch.photozip``). A photo
that cannot be used carries its error instead of bytes, and becomes an error row, never a stop.
"""

from __future__ import annotations

import glob
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pillcheck import images
from pillcheck.batch.photozip import PHOTO_SUFFIXES, PhotoZip

ZIP_SEP = "!"  # a zip entry's photo id: "archive.zip!folder/photo.jpg"


class InputMissing(ValueError):
    """An INPUT that names nothing (a typo): said before any work starts."""


@dataclass(frozen=True)
class Photo:
    id: str  # the photo's name in the output: the path as given, or zip ZIP_SEP entry
    data: bytes | None
    error: str | None = None  # why it is not analysed (English, ``images.MESSAGES``)


def _wanted(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES | {".zip"} and not path.name.startswith(".")


def files(inputs: list[str]) -> list[Path]:
    """Every file the inputs name, in a stable order, each once: a folder gives its photos and zips (recursively),
    a glob its matches, a file itself (even one that is not a photo: it becomes an error row)."""
    out: dict[Path, None] = {}
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _wanted(p))
        elif path.exists():
            found = [path]
        elif glob.has_magic(text):
            found = sorted(p for p in map(Path, glob.glob(text, recursive=True)) if p.is_dir() or _wanted(p))
            found = [q for p in found for q in (sorted(x for x in p.rglob("*") if _wanted(x)) if p.is_dir() else [p])]
        else:
            raise InputMissing(f"{text}: no such file or folder")
        if not found:
            raise InputMissing(f"{text}: no photos or zips {'match' if glob.has_magic(text) else 'in it'}")
        out.update(dict.fromkeys(found))
    return list(out)


def is_zip(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".zip"


def photos(file_id: str, data: bytes | None, done: frozenset[str] | set[str] = frozenset()) -> Iterator[Photo]:
    """The photos in the file ``file_id`` (a path as given; its bytes, or None to read it here), skipping the
    ids in ``done``."""
    if is_zip(file_id):
        try:
            with PhotoZip(io.BytesIO(data) if data is not None else file_id) as archive:
                for entry in archive:
                    pid = f"{file_id}{ZIP_SEP}{entry.name}"
                    if pid not in done:
                        yield Photo(pid, entry.data, str(entry.error) if entry.error else None)
        except images.InputError as exc:
            if file_id not in done:
                yield Photo(file_id, None, str(exc))
        return
    if file_id in done:
        return
    if data is None:
        try:
            data = read(Path(file_id))
        except images.InputError as exc:
            yield Photo(file_id, None, str(exc))
            return
    yield Photo(file_id, data)


def read(path: Path) -> bytes:
    """A file's bytes, refused above the upload limit before reading (a stray video in a folder)."""
    size = path.stat().st_size
    if size > images.MAX_BYTES:
        raise images.InputError("too_large", mb=round(size / 2**20), limit=round(images.MAX_BYTES / 2**20))
    return path.read_bytes()


def pending(file_id: str, done: set[str]) -> bool:
    """Whether a file may still hold photos to analyse (a zip's entries are checked once it is opened)."""
    return is_zip(file_id) or file_id not in done


def count(files: list[Path], done: set[str]) -> int:
    """How many photos are left to analyse (for the progress bar): a zip is opened, not read."""
    n = 0
    for path in files:
        file_id = str(path)
        if not is_zip(file_id):
            n += file_id not in done
            continue
        try:
            with PhotoZip(path) as archive:
                n += sum(f"{file_id}{ZIP_SEP}{info.filename}" not in done for info in archive.infos)
        except images.InputError:
            n += file_id not in done
    return n
