"""DUR checks on the real rules and products."""

from __future__ import annotations

import itertools

import pytest

from pillcheck.safety.dur import Profile, check, possible_warnings

from .conftest import needs_shared

pytestmark = needs_shared


def _products(official, code: str) -> list[str]:
    return [r[0] for r in official.cursor().execute(
        "SELECT DISTINCT item_seq FROM item_ingredients WHERE ingr_code = ? ORDER BY 1", [code]).fetchall()]


def _kinds(result, kind):
    return [w for w in result.warnings if w.kind == kind]


def test_recorded_itraconazole_simvastatin_pair(official):
    result = check(official.dur, ["200000913", "200400682"])
    (w,) = _kinds(result, "CONTRAINDICATED")
    assert w.severity == "critical"
    assert set(w.items) == {"200000913", "200400682"}
    assert set(w.ingredients) == {"D000762", "D000027"}
    assert w.reason == "횡문근융해증"
    assert w.notice_date and len(w.notice_date) == 8
    # Either order of the input gives the same warning.
    assert _kinds(check(official.dur, ["200400682", "200000913"]), "CONTRAINDICATED")[0].reason == "횡문근융해증"


def test_every_itraconazole_product_against_simvastatin_products(official):
    itra, simva = _products(official, "D000762"), _products(official, "D000027")
    assert len(itra) > 20 and len(simva) > 20
    for a, b in itertools.islice(itertools.product(itra, simva), 0, None, 97):  # a spread of ~90 pairs
        hits = [w for w in _kinds(check(official.dur, [a, b]), "CONTRAINDICATED")
                if set(w.ingredients) == {"D000762", "D000027"}]
        assert hits and hits[0].reason == "횡문근융해증", (a, b)


def test_combination_only_rule_needs_the_combination(official):
    """에르고타민 (복합, with 카페인무수물) × 수마트립탄: fires for 크래밍정 (ergotamine+caffeine), never for a
    product whose only ingredient is ergotamine."""
    sumatriptan = _products(official, "D000650")[0]
    combo = check(official.dur, ["199602669", sumatriptan])
    assert any("혈압상승 및 맥각독성" in w.reason for w in _kinds(combo, "CONTRAINDICATED"))
    # 크래밍정 lists caffeine under D000852 while the rule names 카페인무수물 D001266: matched by name.
    assert official.cursor().execute(
        "SELECT count(*) FROM item_rules WHERE item_seq = '199602669' AND mix_type = '복합'").fetchall()[0][0] >= 1


def test_combination_rule_does_not_fire_on_single_ingredient_products(official):
    con = official.cursor()
    # Every product that received a 복합 rule holds at least two ingredients and the listed partner.
    bad = con.execute("""
        SELECT r.item_seq FROM item_rules r
        WHERE r.mix_type = '복합' AND r.item_n < 2""").fetchall()
    assert bad == []
    # And a real single-ingredient product with a 복합-only rule on its ingredient gets none of them.
    single = con.execute("""
        SELECT x.item_seq FROM item_ingredients x
        WHERE x.ingr_code IN (SELECT ingr_code FROM dur_rules WHERE mix_type = '복합')
        GROUP BY x.item_seq HAVING count(DISTINCT coalesce(x.ingr_code, x.m_code)) = 1 LIMIT 50""").fetchall()
    assert single
    for (seq,) in single:
        assert con.execute("SELECT count(*) FROM item_rules WHERE item_seq = ? AND mix_type = '복합'",
                           [seq]).fetchall()[0][0] == 0, seq


def test_deleted_rules_never_fire(official):
    """A 병용금기 pair that exists only as a 삭제 row in the API dump gives no warning."""
    import duckdb

    from .conftest import MFDS

    dump = MFDS / "api_dumps" / "dur_usjnt_taboo.csv"
    con = duckdb.connect()
    pairs = con.execute(f"""
        WITH d AS (SELECT * FROM read_csv('{dump}', all_varchar=true))
        SELECT INGR_CODE, MIXTURE_INGR_CODE FROM d WHERE DEL_YN = '삭제' AND MIX_TYPE = '단일'
          AND MIXTURE_MIX_TYPE = '단일'
        EXCEPT SELECT INGR_CODE, MIXTURE_INGR_CODE FROM d WHERE DEL_YN = '정상'
        EXCEPT SELECT MIXTURE_INGR_CODE, INGR_CODE FROM d WHERE DEL_YN = '정상'""").fetchall()
    tested = 0
    for a, b in pairs:
        pa, pb = _products(official, a), _products(official, b)
        if pa and pb:
            hits = [w for w in _kinds(check(official.dur, [pa[0], pb[0]]), "CONTRAINDICATED")
                    if set(w.ingredients) == {a, b}]
            assert hits == [], (a, b)
            tested += 1
    assert tested >= 3


def test_same_ingredient_in_two_products(official):
    acetaminophen = _products(official, "D000147")
    result = check(official.dur, acetaminophen[:2])
    (w,) = _kinds(result, "SAME_INGREDIENT")
    assert w.ingredients == ["D000147"] and w.severity == "warning"


def test_duplicate_therapy_same_group_and_series(official):
    # Two different NSAIDs (아세클로페낙 D000739, 아세메타신 D000031: 해열진통소염제 / 비스테로이드성 소염제).
    a, b = _products(official, "D000739")[0], _products(official, "D000031")[0]
    (w,) = _kinds(check(official.dur, [a, b]), "DUPLICATE_THERAPY")
    assert "해열진통소염제" in w.detail and set(w.ingredients) == {"D000739", "D000031"}


def test_age_pregnancy_and_elderly_need_a_profile(official):
    acarbose = _products(official, "D000149")[0]  # 특정연령대금기 18세 이하
    assert not _kinds(check(official.dur, [acarbose]), "AGE")
    assert "AGE" in check(official.dur, [acarbose]).checks_skipped
    assert _kinds(check(official.dur, [acarbose], Profile(age=10)), "AGE")[0].severity == "critical"
    assert not _kinds(check(official.dur, [acarbose], Profile(age=40)), "AGE")
    progesterone_oral = [s for s in _products(official, "D000100")
                         if official.dur.items[s][0] and "주" not in official.dur.items[s][0]]
    preg = check(official.dur, progesterone_oral[:1], Profile(pregnant=True))
    assert _kinds(preg, "PREGNANCY")
    clonazepam = _products(official, "D000375")[0]
    assert _kinds(check(official.dur, [clonazepam], Profile(age=70)), "ELDERLY")[0].severity == "caution"
    assert not _kinds(check(official.dur, [clonazepam], Profile(age=50)), "ELDERLY")


def test_unknown_and_unchecked_items_are_reported(official):
    unchecked = official.cursor().execute("""SELECT item_seq FROM appearance
        WHERE item_seq NOT IN (SELECT item_seq FROM item_ingredients) LIMIT 1""").fetchall()[0][0]
    result = check(official.dur, ["200000913", "000000000", unchecked])
    assert result.unknown == ["000000000"]
    assert result.unchecked == [unchecked]


def test_profile_validation():
    with pytest.raises(ValueError, match="age"):
        Profile(age=-3)


def test_possible_warnings_of_pills_not_identified(official):
    """An unidentified pill's likely products are checked as what they would mean: itraconazole taken, pill #2
    maybe simvastatin -> a possible 병용금기 under that condition; never below POSSIBLE_P, never between two
    products of one pill, never repeating a found warning, and only critical or warning-level hits."""
    itra, simva = "200000913", "200400682"
    other = _products(official, "D000147")[0]  # an acetaminophen product: nothing with itraconazole
    (e,) = possible_warnings(official.dur, [itra], {2: [(simva, 0.6), (other, 0.3)]})
    assert e["warning"]["kind"] == "CONTRAINDICATED" and e["if"] == {"2": simva} and e["p"] == 0.6
    assert set(e["warning"]["items"]) == {itra, simva}
    assert possible_warnings(official.dur, [itra], {2: [(simva, 0.04)]}) == []
    assert possible_warnings(official.dur, [], {2: [(simva, 0.5), (itra, 0.4)]}) == []  # one pill, one product
    (e,) = possible_warnings(official.dur, [], {2: [(simva, 0.5)], 3: [(other, 0.5), (itra, 0.4)]})
    assert e["if"] == {"2": simva, "3": itra} and e["p"] == pytest.approx(0.2)
    assert possible_warnings(official.dur, [itra, simva], {3: [(simva, 0.9)]}) == []  # found, not possible
    assert possible_warnings(official.dur, [itra, simva], {3: [(other, 0.9)]}) == []
    acarbose, clonazepam = _products(official, "D000149")[0], _products(official, "D000375")[0]
    (e,) = possible_warnings(official.dur, [], {1: [(acarbose, 0.3), (clonazepam, 0.3)]}, Profile(age=10))
    assert e["warning"]["kind"] == "AGE" and e["if"] == {"1": acarbose}
    assert possible_warnings(official.dur, [], {1: [(clonazepam, 0.9)]}, Profile(age=70)) == []  # caution only
