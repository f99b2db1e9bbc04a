"""The official OpenAPI sources and the downloader behind `pillcheck data update`.

Each operation is fetched page by page into ``<dest>/<name>/page_00001.json``. A page already on disk is not
fetched again, so an interrupted update resumes where it stopped; a finished operation gets a ``_complete``
marker with its totalCount. Transient failures (timeouts, 5xx, 429) are retried with exponential backoff;
a missing network or a rejected key fails at once with a message that says so.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pillcheck import config
from pillcheck.catalog.readers import DataFileError, json_items

MAX_DOWNLOAD = 256 * 1024 * 1024  # one response; the reimbursement list is ~4 MB, an API page well under 1 MB


class UpdateError(RuntimeError):
    """`data update` cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Operation:
    name: str
    path: str
    rows: int = 100
    what: str = ""


@dataclass(frozen=True)
class FileSource:
    """A table published as one file (HIRA's reimbursement list): fetched whole, saved as ``save_as`` with the
    month it was fetched in place of ``{month}`` (the importer reads the list's month from the file name)."""

    name: str
    url: str
    save_as: str
    columns: tuple[str, ...] = ()  # the header must name these, or the body is not the table (an error page)
    what: str = ""


def operations(manifest: Path = config.MANIFEST) -> list[Operation]:
    spec = json.loads(Path(manifest).read_text(encoding="utf-8"))
    return [Operation(o["name"], o["path"], int(o.get("rows", 100)), o.get("what", "")) for o in spec["operations"]]


def file_sources(manifest: Path = config.MANIFEST) -> list[FileSource]:
    """The manifest's published files; ``$PILLCHECK_<NAME>_URL`` points one elsewhere (a mirror, a test server)."""
    spec = json.loads(Path(manifest).read_text(encoding="utf-8"))
    return [FileSource(f["name"], os.environ.get(f"PILLCHECK_{f['name'].upper()}_URL", f["url"]), f["save_as"],
                       tuple(f.get("columns", ())), f.get("what", "")) for f in spec.get("files", [])]


class Fetcher:
    """GET with retries. ``sleep`` is injectable so tests run the real backoff schedule without waiting it out."""

    def __init__(self, base: str, key: str, *, retries: int = 5, backoff: float = 1.0, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base, self.key = base.rstrip("/"), key
        self.retries, self.backoff, self.timeout, self.sleep = retries, backoff, timeout, sleep
        self.requests = 0

    def get(self, op: Operation, page: int) -> dict:
        query = urllib.parse.urlencode({"serviceKey": self.key, "pageNo": page, "numOfRows": op.rows, "type": "json"})
        return self._request(f"{self.base}/{op.path}?{query}", f"{op.name} page {page}",
                             lambda body: _parse(body, op, page), keyed=True)

    def get_file(self, src: FileSource) -> bytes:
        """A published file (no service key), checked to be the table it should be before it is kept."""
        return self._request(src.url, src.name, lambda body: _check_file(body, src), keyed=False)

    def _request(self, url: str, label: str, accept: Callable[[bytes], Any], *, keyed: bool) -> Any:
        """GET ``url`` until ``accept`` takes the body, retrying what may pass (timeouts, 5xx, 429, bad bodies)."""
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 (https/http only)
                    body = resp.read(MAX_DOWNLOAD + 1)
                if len(body) > MAX_DOWNLOAD:
                    raise UpdateError(f"{label}: the download is larger than {MAX_DOWNLOAD >> 20} MiB; not kept")
                return accept(body)
            except urllib.error.HTTPError as exc:
                if keyed and exc.code in (401, 403):
                    raise UpdateError(f"{label}: the API rejected the service key (HTTP {exc.code}); check "
                                      "PILLCHECK_SERVICE_KEY (use the 'Decoding' key from data.go.kr)") from exc
                if exc.code not in (429, 500, 502, 503, 504) or attempt == self.retries:
                    raise UpdateError(f"{label}: HTTP {exc.code} {exc.reason}") from exc
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or getattr(
                        reason, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                    host = urllib.parse.urlsplit(url).netloc
                    raise UpdateError(f"cannot reach {host} ({exc.reason}); `data update` needs the network. "
                                      "Offline, import files you already have with `pillcheck data import DIR`.") from exc
                if attempt == self.retries:
                    raise UpdateError(f"{label}: {exc.reason}") from exc
            except (TimeoutError, _RetryableBody) as exc:
                if attempt == self.retries:
                    raise UpdateError(f"{label}: {exc}") from exc
            self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


class _RetryableBody(Exception):
    """A 200 response whose body is not a usable page (truncated JSON, a gateway's HTML)."""


def _parse(body: bytes, op: Operation, page: int) -> dict:
    text = body.decode("utf-8", errors="replace")
    if "SERVICE_KEY_IS_NOT_REGISTERED" in text or "SERVICE KEY IS NOT REGISTERED" in text:
        raise UpdateError(f"{op.name}: the service key is not registered for this API on data.go.kr")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _RetryableBody(f"{op.name} page {page}: response is not JSON ({text[:80]!r})") from exc
    try:
        json_items(payload, Path(f"{op.name}/page_{page}"))
    except DataFileError as exc:
        raise UpdateError(str(exc)) from exc
    return payload


def _check_file(body: bytes, src: FileSource) -> bytes:
    for enc in ("utf-8-sig", "cp949"):
        try:
            header = body[:4096].decode(enc).split("\n", 1)[0]
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _RetryableBody(f"{src.name}: the download is not text")
    missing = [c for c in src.columns if c not in header]
    if missing:
        raise _RetryableBody(f"{src.name}: the download is not the expected table (no {', '.join(missing)} column)")
    return body


def download_files(dest: Path, fetcher: Fetcher, srcs: list[FileSource], *, month: str | None = None) -> dict[str, str]:
    """Fetch each published file into ``dest/<name>/``; a finished one (``_complete``) is not fetched again."""
    month = month or time.strftime("%Y-%m")
    out = {}
    for src in srcs:
        folder = Path(dest) / src.name
        folder.mkdir(parents=True, exist_ok=True)
        done = folder / "_complete"
        if done.exists() and (folder / done.read_text().strip()).is_file():
            out[src.name] = done.read_text().strip()
            continue
        name = src.save_as.replace("{month}", month)
        tmp = folder / f"{name}.part"
        tmp.write_bytes(fetcher.get_file(src))
        os.replace(tmp, folder / name)
        done.write_text(name)
        out[src.name] = name
    return out


def _progress(op: Operation, done: int, total: int) -> None:
    width = 24
    filled = width * done // max(total, 1)
    print(f"\r{op.name:<30} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} pages", end="", file=sys.stderr,
          flush=True)


def _write_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _page_ok(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def download(dest: Path, fetcher: Fetcher, ops: list[Operation], *, progress: bool = True,
             max_pages: int | None = None) -> dict[str, int]:
    """Fetch every page of every operation into ``dest``; returns items per operation."""
    counts: dict[str, int] = {}
    for op in ops:
        op_dir = Path(dest) / op.name
        op_dir.mkdir(parents=True, exist_ok=True)
        if (op_dir / "_complete").exists():
            counts[op.name] = int((op_dir / "_complete").read_text() or 0)
            continue
        first = op_dir / "page_00001.json"
        payload = _page_ok(first)
        if payload is None:
            payload = fetcher.get(op, 1)
            _write_atomic(first, payload)
        total = int((payload.get("body") or {}).get("totalCount") or 0)
        pages = max(1, math.ceil(total / op.rows))
        if max_pages:
            pages = min(pages, max_pages)
        for page in range(2, pages + 1):
            path = op_dir / f"page_{page:05d}.json"
            if _page_ok(path) is None:
                _write_atomic(path, fetcher.get(op, page))
            if progress:
                _progress(op, page, pages)
        if progress:
            _progress(op, pages, pages)
            print(file=sys.stderr)
        (op_dir / "_complete").write_text(str(total))
        counts[op.name] = total
    return counts


def update(db_path: Path, *, dest: Path | None = None, key: str | None = None, base: str | None = None,
           ops: list[Operation] | None = None, extra_dir: Path | None = None, progress: bool = True,
           fetcher: Fetcher | None = None, srcs: list[FileSource] | None = None) -> dict:
    """Download the official data and import it (with ``extra_dir``'s bulk files, e.g. mark codes) atomically."""
    from pillcheck.catalog.importer import import_dir

    if fetcher is None:
        key = key or config.service_key()
        if not key:
            raise UpdateError("no data.go.kr service key: set PILLCHECK_SERVICE_KEY (get one at data.go.kr for the "
                              "'의약품 낱알식별', 'DUR', '허가', 'e약은요' services)")
        fetcher = Fetcher(base or config.api_base(), key)
    dest = Path(dest or config.data_home() / "download")
    counts = download(dest, fetcher, ops or operations(), progress=progress)
    files = download_files(dest, fetcher, file_sources() if srcs is None else srcs)
    result = import_dir([dest] + ([Path(extra_dir)] if extra_dir else []), db_path)
    return {"downloaded": counts, "files": files, "requests": fetcher.requests, **result}
