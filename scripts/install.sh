#!/usr/bin/env bash
# Install pillcheck into a fresh virtual environment and build its catalog. The Dockerfile runs exactly this;
# CI runs it too (tests/test_install.py), so the image's steps are tested without a Docker engine.
#
#   scripts/install.sh VENV DB [DATA_DIR]
#
# DATA_DIR with official files -> `data import`; else $PILLCHECK_SERVICE_KEY set -> `data update`;
# else the fictitious demo fixture (the app then says "demo data" everywhere).
set -euo pipefail
venv=$1
db=$2
data=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-cache-dir --upgrade pip
"$venv/bin/pip" install --quiet --no-cache-dir "$here"
if [ -n "$data" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ]; then
  "$venv/bin/pillcheck" data import "$data" --db "$db"
elif [ -n "${PILLCHECK_SERVICE_KEY:-}" ]; then
  "$venv/bin/pillcheck" data update --db "$db" --quiet
else
  "$venv/bin/pillcheck" data demo --db "$db"
fi
# The models must load with the serving stack alone (no torch in this environment).
"$venv/bin/python" - <<'PY'
import importlib.util, sys
from pillcheck.inference import models
print("detector providers:", models.detector().providers)
if not (models.appearance() and models.imprint() and models.measure()):
    sys.exit("an identification model did not load")
sys.exit(1 if importlib.util.find_spec("torch") else 0)
PY
