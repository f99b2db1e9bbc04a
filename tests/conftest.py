"""Shared fixtures. Tests on the real official data read ../shared/data and skip only when it is absent."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from pillcheck import config
from pillcheck.catalog.db import Catalog
from pillcheck.catalog.importer import import_dir

SHARED = Path(os.environ.get("PILLCHECK_SHARED_DATA", config.REPO_ROOT.parent / "shared" / "data"))
MFDS = SHARED / "mfds"
HIRA = SHARED / "hira"
needs_shared = pytest.mark.skipif(not MFDS.is_dir(), reason=f"official data not found at {MFDS}")
PHOTOS = SHARED / "photos" / "catalog_reference" / "set_a"


def white_ruler_photos() -> list[dict]:
    """The official photos of white products on the ruler grid (labels.csv rows, by ITEM_SEQ): white pills on the
    light grid are the hard case for cutting and segmenting. Skips when the photos are absent."""
    if not (PHOTOS / "labels.csv").is_file():
        pytest.skip(f"reference photos not found at {PHOTOS}")
    with open(PHOTOS / "labels.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["photo_style"] == "ruler_grid" and r["color_front"] == "하양"]
    return sorted(rows, key=lambda r: r["item_seq"])


@pytest.fixture(scope="session")
def official_db(tmp_path_factory) -> Path:
    if not MFDS.is_dir():
        pytest.skip(f"official data not found at {MFDS}")
    db = tmp_path_factory.mktemp("official") / "pillcheck.duckdb"
    import_dir([MFDS, HIRA] if HIRA.is_dir() else MFDS, db)
    return db


@pytest.fixture(scope="session")
def official(official_db) -> Catalog:
    return Catalog(official_db)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    import_dir(config.DEMO_DIR, db, data_kind="demo")
    return db


@pytest.fixture(scope="session")
def demo(demo_db) -> Catalog:
    return Catalog(demo_db)
