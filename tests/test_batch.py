"""`pillcheck batch`: folders, zips and globs of real phone photos -> rows; resumable; bad files are rows;
the Ray engine (a local 2-CPU Ray) gives the same rows as the local one."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from pillcheck.batch import command, engines, inputs
from pillcheck.batch.output import Output, OutputError
from pillcheck.batch.rows import FIELDS, FLOATS

from .conftest import SHARED, needs_shared
from .test_ui import needs_detector

REAL = SHARED / "photos" / "pushin-pill" / "images"
pytestmark = [needs_shared, needs_detector,
              pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword|Deprecat).*")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four real phone photos (two loose, two in a zip beside a text file), a corrupt photo and an empty one."""
    real = sorted(REAL.glob("*.jpg"))[::40][:4]
    root = tmp_path_factory.mktemp("batch") / "photos"
    (root / "sub").mkdir(parents=True)
    shutil.copy(real[0], root / "a.jpg")
    shutil.copy(real[1], root / "sub" / "b.jpg")
    with zipfile.ZipFile(root / "box.zip", "w") as zf:
        zf.write(real[2], "inner/c.jpg")
        zf.write(real[3], "d.jpg")
        zf.writestr("notes.txt", "not a photo")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    return root


def job(db: Path) -> engines.Job:
    return engines.Job(db=db, models_dir=Path("models").resolve(), my_meds=[])


def read(path: Path) -> list[dict]:
    """Rows of any output format as text (what a person comparing files sees)."""
    if path.suffix == ".csv":
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        con = duckdb.connect()
        rel = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        rows = [dict(zip([d[0] for d in rel.description], r)) for r in rel.fetchall()]
    def cell(k: str, v: object) -> str:
        return "" if v is None or v == "" else f"{float(v):g}" if k in FLOATS else str(v)
    return [{k: cell(k, v) for k, v in r.items()} for r in rows]


def canonical(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)


@pytest.fixture(scope="module")
def local_run(official_db, folder, tmp_path_factory) -> tuple[command.Summary, Path]:
    """The folder through the local engine, once for the module."""
    out = tmp_path_factory.mktemp("local") / "out.csv"
    return command.run([str(folder)], out, job(official_db), progress=False), out


def test_local_rows_resume_and_errors(official_db, folder, local_run, tmp_path):
    first, done = local_run
    out = tmp_path / "out.csv"
    shutil.copy(done, out)
    rows = read(out)
    photos = [r for r in rows if r["row"] == "photo"]
    ids = {r["image"] for r in photos}
    zid = f"{folder / 'box.zip'}{inputs.ZIP_SEP}"
    assert ids == {str(folder / "a.jpg"), str(folder / "sub" / "b.jpg"), zid + "inner/c.jpg", zid + "d.jpg",
                   zid + "notes.txt", str(folder / "broken.jpg"), str(folder / "empty.png")}
    assert first.photos == 7 and first.errors == 3 and first.before == 0
    errors = {r["image"]: r["error"] for r in photos if r["error"]}
    assert "cannot be decoded" in errors[str(folder / "broken.jpg")]
    assert "empty" in errors[str(folder / "empty.png")] and "extension" in errors[zid + "notes.txt"]
    pills = [r for r in rows if r["row"] == "pill"]
    assert len(pills) >= 4 and all(r["x2"] and float(r["x2"]) > float(r["x1"]) for r in pills)
    for p in photos:  # the photo row counts the pills above it; warnings are never copied onto pill rows
        assert p["error"] or int(p["found"]) == sum(r["image"] == p["image"] for r in pills)
    assert not any(r["warning"] for r in pills)

    # a rerun skips what is done
    again = command.run([str(folder)], out, job(official_db), progress=False)
    assert again.photos == 0 and again.before == 7 and read(out) == rows
    # a run killed in the middle of a photo: that photo's half-written rows go, it is analysed again, nothing else
    text = out.read_text(encoding="utf-8-sig")
    last = str(folder / "sub" / "b.jpg")
    lines = text.splitlines(keepends=True)
    cut = [line for line in lines if not (line.startswith(last + ",photo") or line.startswith(last + ",warning"))]
    out.write_text("\ufeff" + "".join(cut) + lines[1][:25], encoding="utf-8")  # and a torn last line
    resumed = command.run([str(folder)], out, job(official_db), progress=False)
    assert resumed.photos == 1 and resumed.before == 6
    assert canonical(read(out)) == canonical(rows)


def test_parquet_jsonl_globs_and_bad_outputs(official_db, folder, tmp_path):
    glob = str(folder / "**" / "*.jpg")
    command.run([glob], tmp_path / "o.parquet", job(official_db), progress=False)
    command.run([str(folder / "a.jpg"), str(folder / "sub")], tmp_path / "o.jsonl", job(official_db), progress=False)
    parquet, jsonl = read(tmp_path / "o.parquet"), read(tmp_path / "o.jsonl")
    assert {r["image"] for r in parquet} == {str(folder / x) for x in ("a.jpg", "sub/b.jpg", "broken.jpg")}
    assert canonical([r for r in parquet if "broken" not in r["image"]]) == canonical(jsonl)
    con = duckdb.connect()
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
                             [str(tmp_path / "o.parquet")]).fetchall())
    assert list(types) == FIELDS and types["pill"] == "INTEGER" and types["x1"] == "DOUBLE"
    with pytest.raises(OutputError, match=r"\.csv, \.jsonl or \.parquet"):
        Output(tmp_path / "o.xlsx")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(OutputError, match="not a pillcheck batch file"):
        Output(tmp_path / "other.csv")
    with pytest.raises(inputs.InputMissing, match="no such file"):
        inputs.files([str(folder / "nope")])
    cli = subprocess.run([sys.executable, "-m", "pillcheck.cli", "batch", str(folder / "nope"), "--out",
                          str(tmp_path / "x.csv"), "--db", str(official_db)], capture_output=True, text=True)
    assert cli.returncode == 2 and "no such file" in cli.stderr and "Traceback" not in cli.stderr


@pytest.mark.slow
def test_ray_engine_gives_the_local_rows(official_db, folder, local_run, tmp_path):
    ray = pytest.importorskip("ray", reason="the [scale] extra (Ray) is not installed")
    local, local_out = local_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = command.run([str(folder)], tmp_path / "ray.jsonl", job(official_db), engine="ray", progress=False)
        assert remote.photos == local.photos == 7
        assert canonical(read(tmp_path / "ray.jsonl")) == canonical(read(local_out))
        assert command.run([str(folder)], tmp_path / "ray.jsonl", job(official_db), engine="ray",
                           progress=False).photos == 0  # resumed on Ray too
    finally:
        ray.shutdown()
