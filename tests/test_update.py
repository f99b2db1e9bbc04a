"""`data update` against a real local HTTP server replaying the recorded OpenAPI responses."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pillcheck.catalog.sources import (
    Fetcher,
    UpdateError,
    download,
    download_files,
    file_sources,
    operations,
    update,
)

from .conftest import HIRA, MFDS, needs_shared
from .replay_server import ReplayServer

pytestmark = needs_shared


def _hira_files() -> dict[str, Path]:
    lists = sorted(HIRA.glob("drug_prices_*.csv"))
    if not lists:
        pytest.skip(f"the HIRA list is not in {HIRA}")
    return {"hira": lists[-1]}


def _served(srv: ReplayServer) -> list:
    return [dataclasses.replace(f, url=f"{srv.base}/files/hira") for f in file_sources()]


def test_update_downloads_pages_and_imports(tmp_path):
    sleeps: list[float] = []
    with ReplayServer(MFDS, files=_hira_files()) as srv:
        fetcher = Fetcher(srv.base, srv.key, sleep=sleeps.append)
        srv.fail[("getUsjntTabooInfoList02", 3)] = 2  # two 503s, then the page
        result = update(tmp_path / "u.duckdb", dest=tmp_path / "dl", fetcher=fetcher, progress=False,
                        extra_dir=MFDS / "pill_identification", srcs=_served(srv))
    assert sleeps == [1.0, 2.0]  # exponential backoff
    month = time.strftime("%Y-%m")
    assert result["files"] == {"hira_drug_prices": f"drug_prices_{month}.csv"}
    assert result["downloaded"]["dur_usjnt_taboo"] >= 1800
    pages = list((tmp_path / "dl" / "dur_usjnt_taboo").glob("page_*.json"))
    assert len(pages) == -(-result["downloaded"]["dur_usjnt_taboo"] // 100)
    with duckdb.connect(str(tmp_path / "u.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dur_rules WHERE kind = 'CONTRAINDICATED'").fetchall()[0][0] > 1700
        # the recorded 허가 상세 response gives its product's ingredient (an M-code) and e약은요 its text
        assert con.execute("SELECT count(*) FROM item_ingredients WHERE item_seq = '202005623' AND source = 'permit'"
                           ).fetchall()[0][0] == 1
        assert con.execute("SELECT count(*) FROM easy_info").fetchall()[0][0] >= 1
        assert con.execute("SELECT value FROM meta WHERE key = 'data'").fetchall()[0][0] == "official"
        # the reimbursement list came with it: joined products, dated by the month it was fetched
        assert con.execute("SELECT count(*) FROM item_market").fetchall()[0][0] > 13_000
        assert con.execute("SELECT value FROM meta WHERE key = 'hira_list_date'").fetchall()[0][0] == month


def test_published_file_is_retried_checked_and_not_fetched_twice(tmp_path):
    with ReplayServer(MFDS, files=_hira_files()) as srv:
        srcs = _served(srv)
        srv.file_body["hira"] = b"<html><body>maintenance</body></html>"  # a gateway's page, answered with 200
        with pytest.raises(UpdateError, match="not the expected table"):
            download_files(tmp_path, Fetcher(srv.base, srv.key, retries=2, sleep=lambda s: None), srcs)
        assert not list((tmp_path / "hira_drug_prices").glob("drug_prices_*"))  # nothing half-kept
        del srv.file_body["hira"]
        srv.fail[("hira", 1)] = 1
        sleeps: list[float] = []
        got = download_files(tmp_path, Fetcher(srv.base, srv.key, sleep=sleeps.append), srcs, month="2026-05")
        assert sleeps == [1.0] and got == {"hira_drug_prices": "drug_prices_2026-05.csv"}
        assert (tmp_path / "hira_drug_prices" / got["hira_drug_prices"]).read_bytes() == srv.files["hira"].read_bytes()
        srv.hits.clear()
        assert download_files(tmp_path, Fetcher(srv.base, srv.key), srcs, month="2026-06") == got
        assert srv.hits["hira"] == 0


def test_interrupted_update_resumes_without_refetching(tmp_path):
    ops = [op for op in operations() if op.name in ("dur_usjnt_taboo", "dur_pwnm_taboo")]
    with ReplayServer(MFDS) as srv:
        srv.fail[("getUsjntTabooInfoList02", 7)] = 99  # the server breaks at page 7
        with pytest.raises(UpdateError, match="page 7"):
            download(tmp_path, Fetcher(srv.base, srv.key, retries=1, sleep=lambda s: None), ops, progress=False)
        saved = len(list((tmp_path / "dur_usjnt_taboo").glob("page_*.json")))
        assert saved == 6 and not (tmp_path / "dur_usjnt_taboo" / "_complete").exists()
        srv.fail.clear()
        srv.hits.clear()
        again = Fetcher(srv.base, srv.key, sleep=lambda s: None)
        counts = download(tmp_path, again, ops, progress=False)
    total_pages = -(-counts["dur_usjnt_taboo"] // 100) + -(-counts["dur_pwnm_taboo"] // 100)
    assert again.requests == total_pages - 6  # pages already on disk are not fetched again
    # A finished update run again asks nothing.
    assert download(tmp_path, Fetcher("http://127.0.0.1:9", "k"), ops, progress=False) == counts


def test_no_network_fails_fast_with_a_clear_message(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(UpdateError, match="cannot reach"):
        download(tmp_path, Fetcher("http://127.0.0.1:9", "k"), operations()[:1], progress=False)
    assert time.perf_counter() - t0 < 5


def test_rejected_key(tmp_path):
    with ReplayServer(MFDS) as srv, pytest.raises(UpdateError, match="rejected the service key"):
        download(tmp_path, Fetcher(srv.base, "wrong"), operations()[:1], progress=False)


def test_cli_update_end_to_end_keeps_old_db_when_it_fails(tmp_path, demo_db):
    db = tmp_path / "cli.duckdb"
    shutil.copy(demo_db, db)
    before = db.read_bytes()
    env = {**os.environ, "PILLCHECK_SERVICE_KEY": "test-key", "PILLCHECK_HOME": str(tmp_path / "home")}
    with ReplayServer(MFDS, files=_hira_files()) as srv:
        srv.down = True
        env["PILLCHECK_API_BASE"] = srv.base
        env.update(srv.file_env)
        bad = subprocess.run([sys.executable, "-m", "pillcheck.cli", "data", "update", "--db", str(db), "--quiet"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "HTTP 500" in bad.stderr and "Traceback" not in bad.stderr
        assert db.read_bytes() == before
        srv.down = False
        ok = subprocess.run([sys.executable, "-m", "pillcheck.cli", "data", "update", "--db", str(db),
                             "--with-dir", str(MFDS / "pill_identification")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "pages" in ok.stderr  # the progress bar
    assert db.read_bytes() != before
    no_key = subprocess.run([sys.executable, "-m", "pillcheck.cli", "data", "update", "--db", str(db)],
                            env={k: v for k, v in env.items() if k != "PILLCHECK_SERVICE_KEY"},
                            capture_output=True, text=True, timeout=60)
    assert no_key.returncode == 2 and "PILLCHECK_SERVICE_KEY" in no_key.stderr
