"""Finding products by what a person types: a product name, a company, or the letters on the pill."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import duckdb
from rapidfuzz import fuzz, process

from pillcheck.catalog.normalize import name_key, normalize_imprint

_LOAD = """
SELECT i.item_seq, i.item_name, i.entp_name, i.etc_otc, a.print_front, a.print_back, a.norm_front, a.norm_back,
       a.shape, a.color_front, a.color_back
FROM items i LEFT JOIN appearance a USING (item_seq)
ORDER BY i.item_seq
"""

MAX_QUERY = 200


@dataclass
class SearchHit:
    item_seq: str
    name: str
    company: str | None
    etc_otc: str | None
    print_front: str | None
    print_back: str | None
    shape: str | None
    color: str | None
    score: float
    matched: str  # "name" or "imprint"

    def to_dict(self) -> dict:
        return asdict(self)


class SearchIndex:
    """Names and imprints of every product, in memory for rapidfuzz (25k rows: a few ms per query)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.rows = con.execute(_LOAD).fetchall()
        self.name_keys = [name_key(r[1]) for r in self.rows]
        self.imprints = [f"{r[6] or ''} {r[7] or ''}".strip() for r in self.rows]

    def search(self, text: str, limit: int = 10) -> list[SearchHit]:
        """Best products for ``text`` by name (partial, fuzzy) or by imprint (both faces, O/0 I/1 folded)."""
        text = (text or "")[:MAX_QUERY]
        best: dict[int, tuple[float, str]] = {}
        key = name_key(text)
        if key:
            for _, score, i in process.extract(key, self.name_keys, scorer=fuzz.WRatio, limit=limit * 3,
                                               score_cutoff=60):
                best[i] = max(best.get(i, (0.0, "")), (float(score), "name"))
        imprint = normalize_imprint(text)
        if imprint and len(imprint) <= 16:
            for _, score, i in process.extract(imprint, self.imprints, scorer=_imprint_score, limit=limit * 3,
                                               score_cutoff=70):
                best[i] = max(best.get(i, (0.0, "")), (float(score), "imprint"))
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], *self._name_rank(kv[0], key), self.rows[kv[0]][1]))
        hits, seen = [], set()
        for i, (score, how) in ranked:
            r = self.rows[i]
            if r[0] in seen:
                continue
            seen.add(r[0])
            color = ", ".join(c for c in (r[9], r[10]) if c) or None
            hits.append(SearchHit(r[0], r[1], r[2], r[3], r[4], r[5], r[8], color, round(score, 1), how))
            if len(hits) == limit:
                break
        return hits

    def _name_rank(self, i: int, key: str) -> tuple[int, int, int, int]:
        """Among equal scores, what a person typing a brand means: a pill of the catalog (it has a look) before
        a powder or syrup, a name that starts with the text, then the base product ('타이레놀' + 정/캡슐/a
        strength) before its variants (콜드, 8시간), then the shorter name (parentheses aside)."""
        name = self.name_keys[i]
        at = name.find(key) if key else -1
        base = at >= 0 and bool(_BASE.match(name, at + len(key)))
        return (self.rows[i][8] is None, 0 if at == 0 else 1 if at > 0 else 2, not base,
                len(_PAREN.sub("", self.rows[i][1] or "")))


_BASE = re.compile(r"(\d+(밀리그|mg|마이크로그)|정|캡슐|연질캡슐|서방정|장용정|필름코팅정|츄어블정|$)")
_PAREN = re.compile(r"\(.*?\)")


def _imprint_score(query: str, faces: str, **_: object) -> float:
    """Best match of the query against either face, or both faces read together."""
    if not faces:
        return 0.0
    parts = faces.split(" ")
    return max(fuzz.ratio(query, p) for p in (*parts, "".join(parts)))
