"""`data update` killed at any point while the app serves: the previous catalog keeps answering, unchanged;
a finished update is picked up by the running server without a restart.

Real pieces only: the app on a loopback port (gradio_client), `pillcheck data update` as a child process
against the local replay of the official API, killed with SIGKILL (a crash, a power cut) or SIGINT (Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import MFDS, needs_shared
from .replay_server import ReplayServer
from .test_ui import free_port, serve_app

pytestmark = [needs_shared, pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")]
DEMO_PAIR = ["999900001", "999900002"]  # 병용금기 in the demo fixture


def wait_for(condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture()
def default_sigint():
    """A test run under nohup (or in the background) ignores SIGINT, and its children inherit that: Ctrl-C could
    not reach the update. Give them the default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_killed_update_leaves_the_old_catalog_serving(demo_db, tmp_path, default_sigint):
    from gradio_client import Client

    db = tmp_path / "live.duckdb"
    shutil.copy(demo_db, db)
    before = db.read_bytes()
    env = {**os.environ, "PILLCHECK_SERVICE_KEY": "test-key", "PILLCHECK_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "pillcheck.cli", "data", "update", "--db", str(db), "--quiet",
           "--download-dir", str(tmp_path / "dl"), "--with-dir", str(MFDS / "pill_identification")]

    def serves_demo(client: Client) -> None:
        result = client.predict(items=DEMO_PAIR, api_name="/check")
        assert result["data"] == "demo" and [w["kind"] for w in result["warnings"]] == ["CONTRAINDICATED"]

    def building(pid: int | str = "*") -> list[Path]:
        return list(tmp_path.glob(f"live.duckdb.building-{pid}"))

    with serve_app(db) as url, ReplayServer(MFDS) as srv:
        client = Client(url, verbose=False)
        serves_demo(client)
        env["PILLCHECK_API_BASE"] = srv.base
        env.update(srv.file_env)
        # 1. killed while downloading
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: srv.hits.total() >= 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert db.read_bytes() == before
        serves_demo(client)
        # 2. killed while the new catalog is being written (downloads resume from disk, then the import starts)
        for sig in (signal.SIGKILL, signal.SIGINT):
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wait_for(lambda p=proc: building(p.pid) and building(p.pid)[0].stat().st_size > 0 or p.poll() is not None)
            assert proc.poll() is None, f"the update ended before the import could be interrupted: {proc.stderr.read()}"
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode != 0
            if sig == signal.SIGINT:
                assert "Traceback" not in err and not building(proc.pid), err  # Ctrl-C: its own half-built file goes
            assert db.read_bytes() == before
            serves_demo(client)
        # 3. an update that finishes: the running server answers from the new catalog at its next request
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert not building()  # the killed run's half-built file was cleaned up
        result = client.predict(items=DEMO_PAIR, api_name="/check")
        assert result["data"] == "official" and not result["warnings"]
        assert sorted(result["unknown"]) == DEMO_PAIR  # the demo codes are not official products


def test_two_server_processes_share_one_catalog_through_an_update(demo_db, tmp_path):
    """The recipe for N processes behind a load balancer: two `pillcheck serve` processes on one read-only
    catalog file; `data update` swaps the file while both serve; each answers from the new one at its next
    request, without a restart and without an error in between."""
    from gradio_client import Client

    db = tmp_path / "live.duckdb"
    shutil.copy(demo_db, db)
    env = {**os.environ, "PILLCHECK_SERVICE_KEY": "test-key", "PILLCHECK_HOME": str(tmp_path / "home")}
    ports = [free_port(), free_port()]
    servers = [subprocess.Popen([sys.executable, "-m", "pillcheck.cli", "serve", "--db", str(db), "--port", str(port),
                                 "--concurrency", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for port in ports]
    try:
        for proc in servers:
            line = proc.stdout.readline()
            assert "serving the demo catalog" in line and "(1 analyses at once" in line, line + proc.stderr.read()
        clients = [Client(f"http://127.0.0.1:{port}/", verbose=False) for port in ports]
        for client in clients:
            assert client.predict(items=DEMO_PAIR, api_name="/check")["data"] == "demo"
        with ReplayServer(MFDS) as srv:
            env.update(PILLCHECK_API_BASE=srv.base, **srv.file_env)
            update = subprocess.Popen([sys.executable, "-m", "pillcheck.cli", "data", "update", "--db", str(db),
                                       "--quiet", "--download-dir", str(tmp_path / "dl"), "--with-dir",
                                       str(MFDS / "pill_identification")], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
            seen = set()
            while update.poll() is None:  # both keep answering while the update downloads and builds
                seen.update(c.predict(items=DEMO_PAIR, api_name="/check")["data"] for c in clients)
                time.sleep(0.2)
            assert update.returncode == 0, update.stderr.read()
        assert "demo" in seen and seen <= {"demo", "official"}  # answered throughout (the swap may land mid-loop)
        for client in clients:
            result = client.predict(items=DEMO_PAIR, api_name="/check")
            assert result["data"] == "official" and sorted(result["unknown"]) == DEMO_PAIR
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(30)

