"""Settings from the environment, with documented defaults. CLI flags override them."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent.parent
# A checkout (or an editable install) finds these beside src/; an installed wheel is told by the environment.
REFERENCE_DIR = Path(os.environ.get("PILLCHECK_REFERENCE", REPO_ROOT / "reference_data"))
DEMO_DIR = REFERENCE_DIR / "demo"
MANIFEST = REFERENCE_DIR / "sources.json"
MODELS_DIR = Path(os.environ.get("PILLCHECK_MODELS", REPO_ROOT / "models"))


def data_home() -> Path:
    """Per-user data folder: $PILLCHECK_HOME, else $XDG_DATA_HOME/pillcheck, else ~/.local/share/pillcheck."""
    if os.environ.get("PILLCHECK_HOME"):
        return Path(os.environ["PILLCHECK_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pillcheck"


def default_db() -> Path:
    """$PILLCHECK_DB, else <data_home>/pillcheck.duckdb."""
    return Path(os.environ.get("PILLCHECK_DB") or data_home() / "pillcheck.duckdb")


def service_key() -> str | None:
    """data.go.kr service key for `data update` ($PILLCHECK_SERVICE_KEY or $DATA_GO_KR_SERVICE_KEY)."""
    return os.environ.get("PILLCHECK_SERVICE_KEY") or os.environ.get("DATA_GO_KR_SERVICE_KEY")


def api_base() -> str:
    """Base URL of the MFDS OpenAPIs; tests point it at a local replay server."""
    return os.environ.get("PILLCHECK_API_BASE", "https://apis.data.go.kr/1471000").rstrip("/")


DEMO_BANNER = "DEMO DATA — fictitious products, not for medical use"
