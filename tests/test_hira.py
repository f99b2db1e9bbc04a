"""The HIRA reimbursement list: name joins, ingredients from generic names, market status, barcodes.

The real-file tests read ../shared/data/hira through the session's official catalog (built from mfds/ and hira/);
the unit tests use hand-written names only.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pandas as pd
import pytest

from pillcheck.catalog import hira
from pillcheck.catalog.status import BarcodeError, by_barcode, gtin13
from pillcheck.ui import render

from .conftest import HIRA


def _ean(body12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


# ---------------------------------------------------------------- units (hand-written names)
@pytest.mark.parametrize(("hira_name", "catalog_name"), [
    ("가나다정10밀리그램(가나다염산염)_(10mg/1정)", "가나다정10밀리그람(가나다염산염)"),
    ("가나다정 10mg_(11.2mg/1정)", "가나다정10밀리그램"),
    ("라마바서방정0.5마이크로그램_(0.5mcg/1정)", "라마바 서방정 0.5 mcg"),
    ("사아자주_(0.5g(1병중))", "사아자주"),
])
def test_product_names_meet_however_they_spell_units_and_spaces(hira_name, catalog_name):
    assert hira.product_key(hira_name) == hira.product_key(catalog_name)


def test_different_strengths_stay_different_products():
    assert hira.product_key("가나다정10밀리그램_(10mg/1정)") != hira.product_key("가나다정20밀리그램")


def test_generic_names_split_into_substances_and_moieties():
    comps = hira.components("amlodipine besylate (as amlodipine   5mg), valsartan   0.16g")
    assert comps == [hira.Component("amlodipine besylate", "amlodipine"), hira.Component("valsartan", None)]
    assert hira.components("calcium carbonate(precipitated)   0.6g, lansoprazole   15mg")[0].name == "calcium carbonate"
    assert hira.components("kallidinogenase   50I.U") == [hira.Component("kallidinogenase", None)]
    assert hira.components("") == []


def _names(pairs: dict[str, str]) -> hira.IngredientNames:
    return hira.IngredientNames(pd.Series(list(pairs)), pd.Series(list(pairs.values())))


def test_salts_fold_onto_their_substance_but_never_onto_another():
    names = _names({"D1": "Morphine", "D2": "Morphine Sulfate", "D3": "Lithium carbonate", "D4": "Calcium carbonate",
                    "D5": "Risedronic Acid", "D6": "Cyclosporine", "D7": "Valaciclovir", "D8": "Valganciclovir",
                    "D9": "L-Carbocisteine"})
    assert names.lookup(hira.Component("morphine sulfate", None)) == ({"D1", "D2"}, 0.9)
    assert names.lookup(hira.Component("morphine hydrochloride", None))[0] == {"D1", "D2"}
    # 'calcium carbonate' without its cation is 'carbonate': that must not become lithium carbonate
    assert names.lookup(hira.Component("calcium carbonate", None))[0] == {"D4"}
    assert names.lookup(hira.Component("risedronate sodium", None))[0] == {"D5"}
    assert names.lookup(hira.Component("cyclosporin", None))[0] == {"D6"}
    assert names.lookup(hira.Component("l-carbocysteine", None))[0] == {"D9"}
    assert names.lookup(hira.Component("valaciclovir hydrochloride", "valaciclovir"))[0] == {"D7"}
    assert names.lookup(hira.Component("amoxicillin", None)) == (set(), 0.85)


def test_ambiguous_names_are_not_joined():
    items = pd.DataFrame({"item_seq": ["100000001", "100000002", "100000003", "100000004", "100000005", "100000006"],
                          "item_name": ["하나정10밀리그램", "둘정", "둘정", "셋정(셋성분)", "넷정", "넷정"],
                          "entp_name": ["가제약", "나제약", "다제약", "(주)라제약", "바제약", "바제약"]})
    rows = pd.DataFrame({
        "name": ["하나정10밀리그람_(10mg/1정)", "하나정10밀리그램_(10mg/1정)", "둘정_(5mg/1정)", "셋정_(1mg/1정)",
                 "셋정_(1mg/1정)", "넷정_(2mg/1정)"],
        "entp_name": ["가제약", "가제약", "나제약", "라제약(주)", "마제약", "바제약"],
        "gnl_code": ["111101ATB", "111101ATB", "222201ATB", "333301ATB", "333301ATB", "444401ATB"],
        "std_cd": ["a", "b", "c", "d", "e", "f"]})
    joined = hira.join_items(rows, items)
    # two packs of one product join it; a name two catalog products share joins the one of the same company
    assert joined["item_seq"].tolist()[:3] == ["100000001", "100000001", "100000002"]
    # without the parenthesised ingredient, only the same company's entry joins; two products of one company
    # under one name join neither
    assert joined["item_seq"].tolist()[3:] == ["100000004", None, None]
    assert joined["join_method"].tolist() == ["name", "name", "name_company", "name_company", None, None]
    twice = hira.join_items(rows.assign(gnl_code=["111101ATB", "111102ATB", "2", "3", "3", "4"]), items)
    assert twice["item_seq"].tolist()[:2] == [None, None]  # one product, two strengths: which one is unknown


def test_list_month_and_package_codes():
    assert hira.list_date("drug_prices_2026-04.csv") == "2026-04"
    assert hira.list_date("약제급여목록및급여상한금액표_2026.5.1.xlsx") == "2026-05"
    assert hira.list_date("prices.csv") is None
    code = _ean("880620500012")
    assert gtin13(code) == code and gtin13(f"0{code}") == code
    assert gtin13(f"\x1d010{code}17270101\x1d10AB12") == code  # a GS1 DataMatrix element string
    assert gtin13(code[:-1] + str((int(code[-1]) + 1) % 10)) is None  # wrong check digit
    assert gtin13("12345") is None and gtin13("") is None


# ---------------------------------------------------------------- the real list
@pytest.fixture(scope="module")
def listed(official):
    if official.meta.get("hira_list_date") is None:
        pytest.skip(f"the HIRA list is not in {HIRA}")
    return official


def _own_codes(con) -> dict[str, set[str]]:
    """Ingredients from each product's own official data (DUR 품목, 허가 M-codes), never from the list."""
    rows = con.execute("""SELECT item_seq, list(DISTINCT ingr_code) FROM item_ingredients
        WHERE source IN ('dur_product', 'main_ingr', 'permit') AND ingr_code IS NOT NULL GROUP BY 1""").fetchall()
    return {seq: set(codes) for seq, codes in rows}


def test_sampled_name_joins_carry_the_products_own_ingredients(listed):
    """100 joins drawn with a fixed seed among products whose own data and whose generic name both give DUR codes;
    a join is right when they share an ingredient, or when the product's ingredients are those of the other
    products listed under the same 주성분코드 ingredient (one substance can carry two DUR codes)."""
    con = listed.cursor()
    own = _own_codes(con)
    eng = con.execute("SELECT ingr_code, eng_name FROM ingredients").df()
    names = hira.IngredientNames(eng["ingr_code"], eng["eng_name"])
    joins = con.execute("""SELECT DISTINCT item_seq, gnl_code, gnl_name FROM hira_products
        WHERE item_seq IS NOT NULL ORDER BY item_seq""").fetchall()
    by_group: dict[str, list[str]] = {}
    for seq, gnl, _ in joins:
        by_group.setdefault(gnl[:4], []).append(seq)
    checkable = []
    for seq, gnl, generic in joins:
        from_name = set().union(*(names.lookup(c)[0] for c in hira.components(generic)))
        if seq in own and from_name:
            checkable.append((seq, gnl, from_name))
    assert len(checkable) > 9000

    def right(seq: str, gnl: str, from_name: set[str]) -> bool:
        peers = set().union(*(own.get(o, set()) for o in by_group[gnl[:4]] if o != seq))
        return bool(own[seq] & from_name) or bool(own[seq] & peers)

    sample = random.Random(23).sample(checkable, 100)
    wrong = [s for s in sample if not right(*s)]
    assert wrong == []
    # and over every checkable join, not only the sample
    assert [s[0] for s in checkable if not right(*s)] == []


def test_joins_are_unambiguous(listed):
    con = listed.cursor()
    assert con.execute("""SELECT count(*) FROM (SELECT item_seq FROM hira_products WHERE item_seq IS NOT NULL
        GROUP BY 1 HAVING count(DISTINCT gnl_code) > 1)""").fetchall()[0][0] == 0
    methods = dict(con.execute("SELECT join_method, count(*) FROM hira_products GROUP BY 1").fetchall())
    assert methods["name"] > 15_000 and methods.get("name_company", 0) > 0 and methods[None] > 0
    # the recorded 허가 response carries EDI codes for two products: they join by the code
    assert dict(con.execute("""SELECT item_seq, join_method FROM hira_products WHERE edi_code IN
        ('643900470', '643900480')""").fetchall()) == {"197700120": "edi", "198300343": "edi"}


def test_the_list_raises_ingredient_coverage(listed):
    from pillcheck.cli import catalog_stats

    stats = catalog_stats(listed)
    assert stats["ingredient coverage"] >= 0.81
    assert stats["DUR code coverage"] > 0.62  # 0.582 from the MFDS data alone
    assert stats["ingredient coverage by source"]["HIRA generic name"] > 0.05
    assert stats["reimbursement list 2026-04"]["pill catalog items on the list"] > 13_000


def test_a_barcode_from_the_file_finds_its_product(listed):
    df = pd.read_csv(sorted(HIRA.glob("drug_prices_*.csv"))[-1], dtype=str, keep_default_na=False)
    con = listed.cursor()
    joined = dict(con.execute("""SELECT std_cd, item_seq FROM hira_products WHERE item_seq IS NOT NULL
        AND join_method <> 'edi'""").fetchall())
    rows = df[df["표준코드"].isin(joined)].sample(20, random_state=5)
    for code, name in zip(rows["표준코드"], rows["제품명"]):
        (hit,) = by_barcode(con, code)
        assert hit["item_seq"] == joined[code] and hit["source"] == "hira"
        # the catalog product the code names carries the listed name (joined by name, with or without parentheses)
        assert hira.bare_key(hira.product_key(name)) == hira.bare_key(hira.product_key(hit["name"]))
    # the same code as a GTIN-14 from a DataMatrix finds the same product
    code = rows["표준코드"].iloc[0]
    assert by_barcode(con, f"(01)0{code}(17)281231") == by_barcode(con, code)
    with pytest.raises(BarcodeError, match="13 digits"):
        by_barcode(con, code[:-1] + str((int(code[-1]) + 1) % 10))
    assert by_barcode(con, _ean("880000000000")) == []


def test_market_status_recalls_and_interchangeable_products(listed):
    con = listed.cursor()
    on, gnl = con.execute("""SELECT item_seq, gnl_code FROM item_market WHERE item_seq IN (SELECT item_seq FROM
        appearance) AND gnl_code IN (SELECT gnl_code FROM item_market GROUP BY 1 HAVING count(*) > 3)
        ORDER BY item_seq LIMIT 1""").fetchone()
    off = con.execute("""SELECT item_seq FROM appearance WHERE item_seq NOT IN (SELECT item_seq FROM item_market)
        ORDER BY item_seq LIMIT 1""").fetchone()[0]
    recalled = con.execute("SELECT min(item_seq) FROM recalls WHERE item_seq IN (SELECT item_seq FROM items)"
                           ).fetchone()[0]
    st = listed.status.of([on, off, recalled])
    assert st[on]["market"]["list_date"] == "2026-04" and st[on]["market"]["gnl_code"] == gnl
    assert st[off]["market"] is None
    assert st[recalled]["recalls"] and st[recalled]["recalls"][0]["reason"]
    peers = listed.status.interchangeable(on)
    assert len(peers) == st[on]["market"]["interchangeable"] >= 3 and on not in peers
    assert {r[0] for r in con.execute("SELECT DISTINCT gnl_code FROM item_market WHERE item_seq IN (SELECT unnest(?))",
                                      [peers]).fetchall()} == {gnl}
    # a card says it in words
    html = render.cards_html([{"index": 1, "status": "confirmed", "item_seq": on, "candidates": [],
                               "imprint_read": ""}], {on: {"name": "x", "list_date": "2026-04", **st[on]}}, "ko")
    assert "2026-04 건강보험 급여 목록에 있음" in html
    html = render.cards_html([{"index": 1, "status": "confirmed", "item_seq": recalled, "candidates": [],
                               "imprint_read": ""}], {recalled: {"name": "x", **st[recalled]}}, "en")
    assert "Recall" in html and st[recalled]["recalls"][0]["reason"] in html


def test_cli_barcode_search_and_check_with_recalls(listed):
    con = listed.cursor()
    code, seq = con.execute("SELECT std_cd, item_seq FROM hira_products WHERE item_seq IS NOT NULL ORDER BY 1 LIMIT 1"
                            ).fetchone()
    run = lambda *a: subprocess.run([sys.executable, "-m", "pillcheck.cli", *a, "--db", str(listed.path)],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    out = run("search", "--barcode", code, "--json")
    assert out.returncode == 0, out.stderr
    assert [r["item_seq"] for r in json.loads(out.stdout)["results"]] == [seq]
    bad = run("search", "--barcode", "12345")
    assert bad.returncode == 2 and "not a package barcode" in bad.stderr and "Traceback" not in bad.stderr
    recalled = con.execute("SELECT min(item_seq) FROM recalls WHERE item_seq IN (SELECT item_seq FROM items)"
                           ).fetchone()[0]
    text = run("check", recalled, seq)
    assert text.returncode == 0 and f"!! recall: {recalled}" in text.stdout
    checked = json.loads(run("check", recalled, seq, "--json").stdout)
    assert checked["products"][seq]["market"]["list_date"] == "2026-04"
