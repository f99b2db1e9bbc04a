"""What is known about a product beyond its pill: market status, recalls, package barcodes, interchangeable products.

One place for these lookups so the cards, `check`, `search --barcode` and the API say the same thing.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict

import duckdb

_BARCODE = """
SELECT DISTINCT coalesce(h.item_seq, r.item_seq), coalesce(i.item_name, h.name, r.product),
       coalesce(i.entp_name, h.entp_name, r.company), CASE WHEN h.std_cd IS NULL THEN 'recall' ELSE 'hira' END
FROM (SELECT ? AS code) q
LEFT JOIN hira_products h ON h.std_cd = q.code
LEFT JOIN (SELECT item_seq, product, company, unnest(string_split(std_cd, ',')) AS code FROM recalls) r
       ON r.code = q.code AND h.std_cd IS NULL
LEFT JOIN items i ON i.item_seq = coalesce(h.item_seq, r.item_seq)
WHERE h.std_cd IS NOT NULL OR r.item_seq IS NOT NULL
ORDER BY 1 NULLS LAST
"""


def gtin13(code: str) -> str | None:
    """A scanned package code as the 13-digit 표준코드: EAN-13 as is, GTIN-14 with a leading 0 (GS1 DataMatrix
    '(01)0880…'), or a GS1 element string; None when it is not a valid GTIN (wrong length or check digit)."""
    hri = re.search(r"\(01\)\s*(\d{14})", code or "")  # '(17)281231(01)0880…' as zxing prints GS1 data
    digits = hri.group(1) if hri else re.sub(r"\D", "", code or "")
    m = re.match(r"^01(\d{14})", digits) if len(digits) > 14 else None
    if m:
        digits = m.group(1)
    if len(digits) == 14 and digits.startswith("0"):
        digits = digits[1:]
    if len(digits) != 13:
        return None
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return digits if (10 - total % 10) % 10 == int(digits[12]) else None


_DESCRIBE = """
SELECT i.item_seq, i.item_name, i.entp_name, i.etc_otc,
       any_value(concat_ws(' / ', nullif(a.print_front, ''), nullif(a.print_back, ''))), any_value(a.shape),
       any_value(concat_ws(', ', nullif(a.color_front, ''), nullif(a.color_back, ''))),
       any_value(a.image_url) FILTER (WHERE a.image_url LIKE 'https://nedrug.mfds.go.kr/%')
FROM items i LEFT JOIN appearance a USING (item_seq)
WHERE i.item_seq IN (SELECT unnest(?::VARCHAR[]))
GROUP BY ALL
"""


def describe(con: duckdb.DuckDBPyConnection, seqs: list[str]) -> dict[str, dict]:
    """Name, company, Rx/OTC and what the pill looks like (imprint, shape, colour, the official photo's address:
    only on the MFDS site, which the person's browser loads it from), to hold against a pill."""
    seqs = list(dict.fromkeys(str(s) for s in seqs if s))
    if not seqs:
        return {}
    return {r[0]: {"item_seq": r[0], "name": r[1], "company": r[2], "etc_otc": r[3], "imprint": r[4] or "",
                   "shape": r[5], "colour": r[6], "image_url": r[7]} for r in con.execute(_DESCRIBE, [seqs]).fetchall()}


class BarcodeError(ValueError):
    """Not a package barcode (표준코드 / GTIN-13): the message says what was wrong."""


def list_date(con: duckdb.DuckDBPyConnection) -> str | None:
    """The month of the reimbursement list in this catalog, None when none was imported."""
    row = con.execute("SELECT value FROM meta WHERE key = 'hira_list_date'").fetchone()
    return row[0] if row else None


class StatusIndex:
    """Market rows and recalls of every product, read once per catalog (~16k and ~400 rows): every photo's report
    and every card asks about a handful of products, which then costs dict lookups, not queries."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.list_date = list_date(con)
        self.market = {seq: (gnl, name, method) for seq, gnl, name, method in con.execute(
            "SELECT item_seq, gnl_code, gnl_name, join_method FROM item_market").fetchall()}
        self.by_gnl: dict[str, list[str]] = defaultdict(list)
        for seq, (gnl, _, _) in sorted(self.market.items()):
            if gnl:
                self.by_gnl[gnl].append(seq)
        self.recalls: dict[str, list[dict]] = defaultdict(list)
        for seq, reason, enforced, date in con.execute(
                "SELECT item_seq, reason, enforced, command_date FROM recalls ORDER BY command_date DESC NULLS LAST"
        ).fetchall():
            self.recalls[seq].append({"reason": reason, "enforced": enforced, "date": date})

    def of(self, seqs: list[str]) -> dict[str, dict]:
        """Per product: ``market`` (on the reimbursement list of ``list_date``, its 주성분코드, how many other catalog
        products share that code) and ``recalls`` (newest first). ``market`` is None for a product not on the list,
        and the key is absent when the catalog holds no list at all (nothing is known either way)."""
        out = {}
        for seq in dict.fromkeys(str(s) for s in seqs if s):  # plain str keys: the API's JSON encoder wants them
            out[seq] = {"recalls": list(self.recalls.get(seq, ()))}
            if self.list_date is not None:
                row = self.market.get(seq)
                out[seq]["market"] = None if row is None else {
                    "list_date": self.list_date, "gnl_code": row[0], "generic_name": row[1], "joined_by": row[2],
                    "interchangeable": len(self.interchangeable(seq))}
        return out

    def interchangeable(self, item_seq: str) -> list[str]:
        """Catalog products with the same 주성분코드 (ingredient, strength, route and form) as ``item_seq``: for every
        DUR check they are the same product. Empty when the product is not on the list."""
        gnl = self.market.get(item_seq, ("",))[0]
        return [s for s in self.by_gnl.get(gnl, ()) if s != item_seq] if gnl else []


def by_barcode(con: duckdb.DuckDBPyConnection, code: str) -> list[dict]:
    """Products for a scanned package code (EAN-13, GTIN-14 or a GS1 DataMatrix string), from the reimbursement
    list's 표준코드 (source ``hira``) and the recall notices' package codes (``recall``). A listed package whose
    product the catalog could not be joined to comes back with ``item_seq`` None and the list's own name."""
    gtin = gtin13(code)
    if gtin is None:
        raise BarcodeError(f"{code!r} is not a package barcode: a 표준코드 is 13 digits (880…) with a valid check digit")
    return [{"item_seq": seq, "name": name, "company": company, "barcode": gtin, "source": source}
            for seq, name, company, source in con.execute(_BARCODE, [gtin]).fetchall()]


def resolve_codes(con: duckdb.DuckDBPyConnection, codes: list[str]) -> list[str]:
    """A medication list as ITEM_SEQ codes: item codes stay, package barcodes (13-14 digits, GS1 strings) become
    their product. A barcode the catalog cannot name stays as typed, so the check lists it as unknown, never drops
    it. Duplicates go; order stays."""
    out = []
    for raw in codes:
        code = str(raw).strip()
        if not code:
            continue
        found = []
        if len(re.sub(r"\D", "", code)) >= 13:  # an ITEM_SEQ has 9 digits
            with contextlib.suppress(BarcodeError):
                found = [f["item_seq"] for f in by_barcode(con, code) if f["item_seq"]]
        out.extend(found or [code])
    return list(dict.fromkeys(out))
