"""The batch's output file (CSV, JSON Lines or Parquet): rows written as photos finish, and resumed.

A photo counts as done once its ``photo`` row is in the file (``batch.rows`` writes it last). Opening an
existing file keeps the rows of done photos and drops a half-written tail (a run killed mid-photo), so a
rerun skips exactly what is complete. CSV and JSON Lines are appended photo by photo; Parquet cannot be
appended, so the whole file is rewritten (atomically) every ``PARQUET_EVERY_S`` and at the end.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import duckdb

from pillcheck.batch.rows import FIELDS, FLOATS, INTS, as_text

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
PARQUET_EVERY_S = 10.0
BOM = "\ufeff"  # Excel opens Hangul correctly


class OutputError(ValueError):
    """An output path we cannot write to or resume from; the message says why."""


def _sql_type(name: str) -> str:
    return "INTEGER" if name in INTS else "DOUBLE" if name in FLOATS else "VARCHAR"


class Output:
    """Rows of a batch run in ``path``; ``done``: the photo ids already complete there."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.format = FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise OutputError(f"{self.path.name}: the output must end in .csv, .jsonl or .parquet")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (self.path.exists() and self.path.stat().st_size)
        rows, clean = ([], True) if fresh else self._read()
        self.done = {r["image"] for r in rows if r["row"] == "photo"}
        kept = [r for r in rows if r["image"] in self.done]
        self._rows = kept if self.format == "parquet" else []
        self._saved = time.monotonic()
        if fresh or not clean or len(kept) < len(rows):
            self._rewrite(kept)
        self._file = None if self.format == "parquet" else open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115

    # ------------------------------------------------------------------ reading what a previous run wrote
    def _read(self) -> tuple[list[dict], bool]:
        """(rows, whether the file ended cleanly) of an existing output."""
        try:
            if self.format == "parquet":
                con = duckdb.connect()
                rel = con.execute("SELECT * FROM read_parquet(?)", [str(self.path)])
                names = [d[0] for d in rel.description]
                rows = [dict(zip(names, r)) for r in rel.fetchall()]
                self._check_columns(names)
                return rows, True
            text = self.path.read_text(encoding="utf-8")
        except (duckdb.Error, UnicodeDecodeError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot resume from it ({exc.__class__.__name__}); "
                              "choose another --out or remove it") from exc
        clean = text.endswith("\n")
        lines = text.removeprefix(BOM).splitlines()
        if not clean:
            lines = lines[:-1]  # the run was stopped while writing this line
        if self.format == "jsonl":
            try:
                rows = [json.loads(line) for line in lines if line.strip()]
            except json.JSONDecodeError as exc:
                raise OutputError(f"{self.path}: line {exc.lineno} is not JSON; not a pillcheck batch file") from exc
            self._check_columns(list(rows[0]) if rows else FIELDS)
            return rows, clean
        reader = csv.DictReader(lines)
        self._check_columns(reader.fieldnames or FIELDS)
        return list(reader), clean

    def _check_columns(self, names: list[str]) -> None:
        if list(names) != FIELDS:
            raise OutputError(f"{self.path}: not a pillcheck batch file of this version (its columns differ); "
                              "choose another --out")

    # ------------------------------------------------------------------ writing
    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        if self.format == "parquet":
            con = duckdb.connect()
            con.execute("CREATE TABLE t (" + ", ".join(f'"{n}" {_sql_type(n)}' for n in FIELDS) + ")")
            if rows:
                con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(FIELDS))})",
                                [[_typed(n, r.get(n)) for n in FIELDS] for r in rows])
            con.execute(f"COPY t TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
            con.close()
        else:
            tmp.write_text((BOM + self._lines([], header=True) if self.format == "csv" else "") + self._lines(rows),
                           encoding="utf-8", newline="")
        os.replace(tmp, self.path)

    def _lines(self, rows: list[dict], header: bool = False) -> str:
        buf = io.StringIO()
        if self.format == "jsonl":
            buf.writelines(json.dumps({n: r.get(n) for n in FIELDS}, ensure_ascii=False) + "\n" for r in rows)
            return buf.getvalue()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(as_text({n: r.get(n) for n in FIELDS}) for r in rows)
        return buf.getvalue()

    def write(self, rows: list[dict]) -> None:
        """One photo's rows (ending with its ``photo`` row), on disk before the next photo's."""
        if self._file is not None:
            self._file.write(self._lines(rows))
            self._file.flush()
        else:
            self._rows.extend(rows)
            if time.monotonic() - self._saved >= PARQUET_EVERY_S:
                self.flush()
        self.done.update(r["image"] for r in rows if r["row"] == "photo")

    def flush(self) -> None:
        if self.format == "parquet":
            self._rewrite(self._rows)
            self._saved = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _typed(name: str, value: object) -> object:
    """A cell as its Parquet column's type (CSV rows read back are text)."""
    if value is None or value == "":
        return None
    if name in INTS:
        return int(value)
    if name in FLOATS:
        return float(value)
    return str(value)
