"""A photo's report as flat table rows: the app's report CSV and `pillcheck batch` write the same rows.

One row per pill; each warning of the photo (found, or possible if a pill is confirmed) is a row of its own,
never repeated on every pill row; and every photo ends with one ``photo`` row (pills found, what was not
checked, the photo advice, or why the file could not be used), so every photo appears in the file and a
photo whose ``photo`` row is there is complete (what a resumed batch skips).
"""

from __future__ import annotations

from pillcheck.safety.dur import condition_text

FIELDS = ["image", "row", "pill", "x1", "y1", "x2", "y2", "detector_confidence", "status", "item_seq", "name",
          "company", "top_candidates", "severity", "warning", "pills", "found", "not_checked", "advice", "data", "error"]
INTS = ("pill", "found")  # typed columns (Parquet); the rest are text
FLOATS = ("x1", "y1", "x2", "y2", "detector_confidence")


def warning_text(w: dict) -> str:
    return f"{w['type_name']}: {' + '.join(w.get('item_names') or w['items'])} — {w['reason']}"


def _row(image: str, kind: str, **values: object) -> dict:
    row = dict.fromkeys(FIELDS)
    row.update(image=image, row=kind, **values)
    return row


def report_rows(image: str, report: dict | None, error: str | None = None) -> list[dict]:
    """Rows for one photo (every field of ``FIELDS``, None where empty): its pills, its warnings, its possible
    warnings, then the ``photo`` row; a photo that could not be used is its ``photo`` row with ``error``."""
    if report is None:
        return [_row(image, "photo", error=error or "")]
    rows = []
    where = {}  # ITEM_SEQ -> the numbers of the pills that are that product
    for p in report["pills"]:
        cands = p["candidates"]
        chosen = next((c for c in cands if c["item_seq"] == p["item_seq"]), None) if p["item_seq"] else None
        if p["item_seq"]:
            where.setdefault(p["item_seq"], []).append(p["index"])
        rows.append(_row(image, "pill", pill=p["index"], **dict(zip(("x1", "y1", "x2", "y2"), p["box"])),
                         detector_confidence=p["confidence"], status=p["status"], item_seq=p["item_seq"],
                         name=(chosen or {}).get("name"), company=(chosen or {}).get("company"),
                         top_candidates=" | ".join(f"{c['item_seq']} {c['name']} ({c['score']:.2f})" for c in cands[:3])
                         or None, data=report["data"]))

    def pills_of(items: list[str]) -> str | None:
        return " ".join(f"#{i}" for i in sorted({i for s in items for i in where.get(s, [])})) or None

    for w in report["warnings"]:
        rows.append(_row(image, "warning", item_seq=" + ".join(w["items"]), severity=w["severity"],
                         warning=warning_text(w), pills=pills_of(w["items"]), data=report["data"]))
    for e in report.get("possible_warnings", []):
        w = e["warning"]
        rows.append(_row(image, "possible", item_seq=" + ".join(w["items"]), severity=w["severity"],
                         warning=f"{condition_text(e)} ({e['p']:.2f}): {warning_text(w)}", pills=pills_of(w["items"]),
                         data=report["data"]))
    gaps = " ".join(f"#{i}" for i in report["not_identified"]) + "".join(
        f" {s}" for s in report["unchecked"] + report["unknown"])
    rows.append(_row(image, "photo", found=len(report["pills"]), not_checked=gaps.strip() or None,
                     advice=report.get("advice"), data=report["data"], error=None))
    return rows


def as_text(row: dict) -> dict:
    """A row for a CSV file: None as an empty cell."""
    return {k: "" if v is None else v for k, v in row.items()}
