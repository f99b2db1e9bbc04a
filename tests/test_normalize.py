import pytest

from pillcheck.catalog.normalize import (
    form_category,
    form_scope_categories,
    normalize_imprint,
    parse_age_base,
    split_coded_names,
    split_codes,
)


@pytest.mark.parametrize(
    ("catalog", "read"),
    [
        ("마크분할선C8", "c8"),
        ("T/A ER", "TA-ER"),
        ("5", " 5 "),
        ("dli분할선DLI", "DLIDLI"),
        ("BOI", "B01"),  # O/0 and I/1 are one glyph on an engraving
        ("l0", "10"),
    ],
)
def test_catalog_and_read_imprints_meet(catalog, read):
    assert normalize_imprint(catalog) == normalize_imprint(read)


def test_normalize_keeps_hangul_and_drops_tokens():
    assert normalize_imprint("마크 한미") == "한미"
    assert normalize_imprint("분할선") == ""
    assert normalize_imprint("십자분할선") == ""
    assert normalize_imprint(None) == ""
    assert normalize_imprint("o", fold=False) == "O"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18세 이하", ("<=", 18.0)),
        ("1세미만", ("<", 1.0)),
        ("65세 이상", (">=", 65.0)),
        ("65세 초과", (">", 65.0)),
        ("3개월 미만", ("<", 0.25)),
        ("gibberish", None),
        (None, None),
    ],
)
def test_age_base(text, expected):
    assert parse_age_base(text) == expected


def test_age_base_weeks():
    op, years = parse_age_base("4주 미만")
    assert op == "<" and years == pytest.approx(28 / 365.25)


def test_form_categories():
    assert form_category("필름코팅정") == "oral"
    assert form_category("경질캡슐제, 산제") == "oral"
    assert form_category("용액주사제") == "injection"
    assert form_category("점안용액제") == "topical"
    assert form_scope_categories(None) is None
    assert form_scope_categories("정제/용액주사제") == ["injection", "oral"]
    assert form_scope_categories("주사제", "경구") == ["oral"]


def test_code_lists():
    assert split_codes("[D000712]Ritonavir(리토나비르)/[D000152]Amlodipine (암로디핀)") == ["D000712", "D000152"]
    assert split_codes(None) == []
    assert split_coded_names("[M083733]이트라코나졸제피과립/[M083734]이트라코나졸") == [
        ("M083733", "이트라코나졸제피과립"), ("M083734", "이트라코나졸")]
    assert split_coded_names("[I005603]트리아졸람/[M088380]트리아졸람")[0] == ("I005603", "트리아졸람")
