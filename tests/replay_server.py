"""A local OpenAPI replay server for `data update` tests (loopback only, stops with the test).

It answers the MFDS operations the way data.go.kr does (JSON envelope, pageNo/numOfRows paging, totalCount):
DUR 성분 operations page through the real API dumps in ../shared/data/mfds/api_dumps; the operations we have
recorded responses for replay them from api_samples (totalCount set to the items the recording holds, since
a recording is one page); every other operation answers with the recorded empty response. Published files (the
HIRA list) are served whole under /files/<name>.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

DUMPS = {
    "getUsjntTabooInfoList02": "dur_usjnt_taboo.csv", "getSpcifyAgrdeTabooInfoList02": "dur_spcify_agrde_taboo.csv",
    "getPwnmTabooInfoList02": "dur_pwnm_taboo.csv", "getCpctyAtentInfoList02": "dur_cpcty_atent.csv",
    "getMdctnPdAtentInfoList02": "dur_mdctn_pd_atent.csv", "getOdsnAtentInfoList02": "dur_odsn_atent.csv",
    "getEfcyDplctInfoList02": "dur_efcy_dplct.csv",
}
SAMPLES = {
    "getSpcifyAgrdeTabooInfoList03": "mermaid_dur_age.json", "getOdsnAtentInfoList03": "mermaid_dur_elderly.json",
    "getUsjntTabooInfoList03": "mermaid_dur_usjnt.json", "getDrugPrdtPrmsnDtlInq06": "mermaid_permission_detail.json",
    "getDrbEasyDrugList": "mermaid_easydrug_ibuprofen.json",
}


class ReplayServer:
    def __init__(self, mfds: Path, key: str = "test-key", files: dict[str, Path] | None = None) -> None:
        self.mfds, self.key = mfds, key
        if files is None:  # the HIRA list beside the MFDS data, when there is one
            lists = sorted((mfds.parent / "hira").glob("drug_prices_*.csv"))
            files = {"hira": lists[-1]} if lists else {}
        self.files = files  # /files/<name> -> a published file (no key), e.g. the HIRA list
        self.file_body: dict[str, bytes] = {}  # a name -> bytes to answer instead (an error page)
        self.hits: Counter[str] = Counter()
        self.fail: dict[tuple[str, int], int] = {}  # (operation, page) -> how many times to answer 503
        self.down = False  # answer 500 to everything
        self._rows: dict[str, list[dict]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def file_env(self) -> dict[str, str]:
        """Environment that points `data update`'s published files at this server."""
        return {"PILLCHECK_HIRA_DRUG_PRICES_URL": f"{self.base}/files/hira"}

    def rows(self, name: str) -> list[dict]:
        if name not in self._rows:
            df = pd.read_csv(self.mfds / "api_dumps" / name, dtype=str, keep_default_na=False)
            self._rows[name] = [{k: (v if v != "" else None) for k, v in r.items()} for r in df.to_dict("records")]
        return self._rows[name]

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(req.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        op = url.path.rsplit("/", 1)[-1]
        page, rows = int(q.get("pageNo", 1)), int(q.get("numOfRows", 10))
        self.hits[op] += 1
        if url.path.startswith("/files/"):
            if self.down or self.fail.get((op, 1), 0) > 0:
                self.fail[op, 1] = self.fail.get((op, 1), 1) - 1
                return self._send(req, 503, b"Service Unavailable")
            if op in self.file_body:
                return self._send(req, 200, self.file_body[op])
            if op not in self.files:
                return self._send(req, 404, b"Not Found")
            return self._send(req, 200, self.files[op].read_bytes())
        if q.get("serviceKey") != self.key:
            return self._send(req, 401, b"Unauthorized")
        if self.down:
            return self._send(req, 500, b"down")
        if self.fail.get((op, page), 0) > 0:
            self.fail[op, page] -= 1
            return self._send(req, 503, b"Service Unavailable")
        if op in DUMPS:
            items = self.rows(DUMPS[op])
            total, chunk = len(items), items[(page - 1) * rows: page * rows]
        elif op in SAMPLES:
            recorded = json.loads((self.mfds / "api_samples" / SAMPLES[op]).read_text(encoding="utf-8"))
            items = recorded["body"].get("items", [])
            total, chunk = len(items), items if page == 1 else []
        else:
            total, chunk = 0, []
        body = {"header": {"resultCode": "00", "resultMsg": "NORMAL SERVICE."},
                "body": {"pageNo": page, "totalCount": total, "numOfRows": rows}}
        if chunk:
            body["body"]["items"] = chunk
        self._send(req, 200, json.dumps(body, ensure_ascii=False).encode())

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, code: int, payload: bytes) -> None:
        req.send_response(code)
        req.send_header("Content-Type", "application/json;charset=UTF-8")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)
