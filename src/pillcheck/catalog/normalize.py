"""Text normalisation shared by the catalog side and the photo side.

The catalog writes imprints as e.g. ``마크분할선C8`` or ``T/A ER``; OCR reads ``c8`` or ``TA-ER``. Both sides go
through :func:`normalize_imprint` so they meet in the same alphabet.
"""

from __future__ import annotations

import functools
import re

_TOKENS = ("마크", "십자분할선", "분할선", "(각인)", "각인")
# Glyphs an engraving or an OCR model confuses: fold each group onto one character.
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_NON_ALNUM = re.compile(r"[^0-9A-Za-z가-힣]+")


@functools.lru_cache(maxsize=1 << 16)
def normalize_imprint(text: str | None, *, fold: bool = True) -> str:
    """Imprint -> uppercase alphanumerics (Hangul kept), logo/score tokens removed.

    With ``fold`` the glyphs an engraving cannot tell apart (O/0, I/1/l) collapse, which is what matching
    needs; without it the text stays readable for display. Cached: every pill's ranking normalises the
    shortlist's catalog strings again (the catalog holds 15,249 distinct raw imprints).
    """
    if not text:
        return ""
    s = str(text)
    for tok in _TOKENS:
        s = s.replace(tok, " ")
    s = _NON_ALNUM.sub("", s).upper()
    return s.translate(_CONFUSABLE) if fold else s


def split_codes(value: str | None, prefix: str = "D") -> list[str]:
    """``[D000712]Ritonavir(리토나비르)/[D000152]…`` -> ``['D000712', 'D000152']``."""
    if not value:
        return []
    return re.findall(rf"\[({prefix}\d{{6}})\]", str(value))


def split_coded_names(value: str | None) -> list[tuple[str, str]]:
    """``[M083733]이트라코나졸제피과립/[M083734]이트라코나졸`` -> [(code, name), ...] (M- and I-codes)."""
    if not value:
        return []
    return [(c, n.strip()) for c, n in re.findall(r"\[([MI]\d{6})\]([^\[]*?)(?=/\[[MI]\d{6}\]|$)", str(value))]


_INJECTION = ("주사",)
_TOPICAL = ("외용", "크림", "연고", "겔", "로션", "패취", "패치", "첩부", "점안", "점이", "점비", "좌제", "좌약",
            "질정", "질용", "흡입", "스프레이", "분무", "가글", "양치", "직장", "카타플라스마", "플라스타", "경피")


def form_category(form: str | None) -> str:
    """Coarse route of a dosage form: 'injection', 'topical' or 'oral' (the default for 정/캡슐/산/액...)."""
    f = form or ""
    if any(t in f for t in _INJECTION):
        return "injection"
    if any(t in f for t in _TOPICAL):
        return "topical"
    return "oral"


def form_scope_categories(form_scope: str | None, remark: str | None = None) -> list[str] | None:
    """Categories a rule's FORM_NAME scope covers; None means every form.

    ``REMARK=경구`` (oral only) narrows the rule to oral products.
    """
    if remark and remark.strip() == "경구":
        return ["oral"]
    if not form_scope or form_scope.strip() in ("", "-"):
        return None
    parts = [p for p in re.split(r"[/,]", form_scope) if p.strip()]
    return sorted({form_category(p) for p in parts})


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(세|개월|주|일)\s*(이하|미만|이상|초과)")
_UNIT_YEARS = {"세": 1.0, "개월": 1 / 12, "주": 7 / 365.25, "일": 1 / 365.25}
_OPS = {"이하": "<=", "미만": "<", "이상": ">=", "초과": ">"}


def parse_age_base(text: str | None) -> tuple[str, float] | None:
    """``'18세 이하'`` -> ('<=', 18.0); ``'3개월 미만'`` -> ('<', 0.25). None if it cannot be read."""
    if not text:
        return None
    m = _AGE.search(text.replace(" ", ""))
    if not m:
        return None
    return _OPS[m.group(3)], float(m.group(1)) * _UNIT_YEARS[m.group(2)]


def clean(value: object) -> str | None:
    """Official files write empty as '', '-', 'nan' or None: fold all of them to None and strip the rest."""
    if value is None:
        return None
    s = str(value).strip()
    return None if s in ("", "-", "nan", "None", "null", "NaN") else s


def name_key(name: str | None) -> str:
    """Ingredient/product name -> comparison key: no spaces or punctuation, lowercase."""
    return _NON_ALNUM.sub("", name or "").lower()
