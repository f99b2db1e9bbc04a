"""Privacy of the running server: after real requests, no uploaded photo is left on disk and nothing personal
(the photo's name or bytes, medications, age, searches) is in the server's log, even at DEBUG level.

The server is `python app.py` in its own process (as deployed), its stdout+stderr captured to a file.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
from PIL import Image

from pillcheck import config
from pillcheck.training.scenes import table_with_pills

from .test_ui import SECRET, free_port, needs_detector

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
PHOTO_NAME = "kim-minsu-evening-pills.jpg"
MEDS = ["999900001", "999900002"]
SEARCH = "데모코나졸 for Kim Minsu"


@needs_detector
def test_no_photo_left_and_nothing_personal_logged(demo_db, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    uploads = tmp_path / "gradio-uploads"
    log_path = tmp_path / "server.log"
    port = free_port()
    env = {**os.environ, "PILLCHECK_BROWSER_SECRET": SECRET, "PILLCHECK_LOG_LEVEL": "DEBUG",
           "GRADIO_TEMP_DIR": str(uploads), "PYTHONUNBUFFERED": "1"}
    img, _ = table_with_pills(640, 480)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    photo = tmp_path / PHOTO_NAME
    photo.write_bytes(buf.getvalue())
    broken = tmp_path / "kim-minsu-broken.jpg"
    broken.write_bytes(buf.getvalue()[:3000])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(config.REPO_ROOT / "app.py"), "--db", str(demo_db),
                                 "--port", str(port), "--host", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        try:
            url = f"http://127.0.0.1:{port}/"
            end = time.monotonic() + 90
            while f"127.0.0.1:{port}" not in log_path.read_text(errors="replace"):
                assert proc.poll() is None and time.monotonic() < end, log_path.read_text(errors="replace")[-2000:]
                time.sleep(0.2)
            client = Client(url, verbose=False)
            report = client.predict(photo=handle_file(str(photo)), my_meds=MEDS, age=93.25, pregnant=True,
                                    api_name="/analyze")
            assert report["pills"] and report["warnings"]
            with pytest.raises(AppError):
                client.predict(photo=handle_file(str(broken)), my_meds=MEDS, api_name="/analyze")
            client.predict(items=MEDS, age=93.25, api_name="/check")
            client.predict(text=SEARCH, limit=3, api_name="/search")
            left = [p for p in uploads.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")]
            assert not left, f"uploaded photos left on disk: {left}"
        finally:
            proc.terminate()
            proc.wait(30)
    text = log_path.read_text(errors="replace")
    assert "running on" in text  # the log is on (the operator's INFO lines are there) ...
    for secret in (PHOTO_NAME, "kim-minsu", *MEDS, SEARCH, "Kim Minsu", "pregnant", "93.25"):
        assert secret not in text, f"{secret!r} is in the server log"  # ... and says nothing about the person
    assert buf.getvalue()[1000:1032].hex() not in text and "Traceback" not in text
