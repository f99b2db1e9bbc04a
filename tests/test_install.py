"""The Dockerfile's steps (scripts/install.sh) in a fresh virtual environment: no torch, models load, demo works."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pillcheck import config


@pytest.mark.slow
def test_install_script_builds_a_working_serving_environment(tmp_path):
    env = {**os.environ, "PILLCHECK_MODELS": str(config.MODELS_DIR), "PILLCHECK_REFERENCE": str(config.REFERENCE_DIR)}
    env.pop("PILLCHECK_SERVICE_KEY", None)
    venv, db = tmp_path / "venv", tmp_path / "db" / "pillcheck.duckdb"
    run = subprocess.run(["bash", str(config.REPO_ROOT / "scripts" / "install.sh"), str(venv), str(db)],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "detector providers" in run.stdout and db.is_file()
    out = subprocess.run([str(venv / "bin" / "pillcheck"), "check", "999900001", "999900002", "--json", "--db", str(db)],
                         env=env, capture_output=True, text=True, timeout=120)
    result = json.loads(out.stdout)
    assert result["data"] == "demo" and result["warnings"][0]["kind"] == "CONTRAINDICATED"
