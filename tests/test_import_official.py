"""Import of the real official files: every rule type complete, deleted rows gone, atomic swap on failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from pillcheck.catalog.importer import import_dir
from pillcheck.catalog.readers import DataFileError

from .conftest import MFDS, needs_shared

pytestmark = needs_shared

API_DUMPS = {
    "병용금기": "dur_usjnt_taboo.csv", "특정연령대금기": "dur_spcify_agrde_taboo.csv", "임부금기": "dur_pwnm_taboo.csv",
    "용량주의": "dur_cpcty_atent.csv", "투여기간주의": "dur_mdctn_pd_atent.csv", "노인주의": "dur_odsn_atent.csv",
    "효능군중복": "dur_efcy_dplct.csv",
}
NEDRUG = {"병용금기": "A", "특정연령대금기": "B", "임부금기": "C", "용량주의": "D", "투여기간주의": "E", "노인주의": "F",
          "효능군중복": "G", "첨가제주의": "I"}


def _rule_counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("SELECT type_name, count(*) FROM dur_rules GROUP BY 1").fetchall())


def test_every_active_rule_of_each_type_is_loaded(official_db):
    """Counts equal the distinct 정상 rows of each source file (counted here by DuckDB, independently)."""
    got = _rule_counts(official_db)
    con = duckdb.connect()
    for type_name, name in API_DUMPS.items():
        expected = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT * FROM read_csv('{MFDS / 'api_dumps' / name}', all_varchar=true)"
            " WHERE DEL_YN = '정상')").fetchall()[0][0]
        assert got[type_name] == expected, type_name
    # 첨가제주의 exists only as a nedrug file (I): all of its rows are active.
    (excipient,) = sorted((MFDS / "dur_ingredient_files").glob("OpenData_PotOpenDurIngr_IC*.csv"))
    assert got["첨가제주의"] == len(excipient.read_text(encoding="utf-8-sig").strip().splitlines()) - 1


def test_nedrug_bulk_files_alone_load_every_row(tmp_path):
    """Without the API dumps, the nedrug A–I files are the rule source: one rule per data row."""
    src = tmp_path / "src"
    shutil.copytree(MFDS / "dur_ingredient_files", src / "dur")
    shutil.copytree(MFDS / "pill_identification", src / "catalog")
    import_dir(src, tmp_path / "n.duckdb")
    got = _rule_counts(tmp_path / "n.duckdb")
    for type_name, letter in NEDRUG.items():
        (f,) = sorted((src / "dur").glob(f"OpenData_PotOpenDurIngr_{letter}C*.csv"))
        rows = len(f.read_text(encoding="utf-8-sig").strip().splitlines()) - 1
        assert got[type_name] == rows, type_name
    with duckdb.connect(str(tmp_path / "n.duckdb"), read_only=True) as con:
        # '|' stood for ',' in the nedrug text: the reader gets the commas back.
        reasons = [r[0] for r in con.execute("SELECT reason FROM dur_rules WHERE reason LIKE '%세로토닌%'").fetchall()]
        assert reasons and not any("|" in r for r in reasons)


def test_catalog_rows_and_keys(official):
    con = official.cursor()
    assert con.execute("SELECT count(*), count(DISTINCT item_seq) FROM appearance").fetchall()[0] == (25040, 25025)
    # Codes keep their leading zeros.
    assert con.execute("SELECT class_no FROM items WHERE item_seq = '200808876'").fetchall()[0][0] == "02390"
    row = con.execute("SELECT print_front, norm_front, shape FROM appearance WHERE item_seq = '200808876'").fetchall()
    assert row == [("IDG", "1DG", "원형")]


def test_deleted_rules_are_not_loaded(official):
    """Every 병용금기 row marked 삭제 (and with no active twin) is absent from the loaded rules."""
    dump = MFDS / "api_dumps" / "dur_usjnt_taboo.csv"
    deleted = duckdb.connect().execute(f"""
        WITH d AS (SELECT * FROM read_csv('{dump}', all_varchar=true))
        SELECT INGR_CODE, MIXTURE_INGR_CODE, PROHBT_CONTENT FROM d WHERE DEL_YN = '삭제'
        EXCEPT SELECT INGR_CODE, MIXTURE_INGR_CODE, PROHBT_CONTENT FROM d WHERE DEL_YN = '정상'""").fetchall()
    assert len(deleted) > 20
    loaded = set(official.cursor().execute(
        "SELECT ingr_code, partner_code, reason FROM dur_rules WHERE kind = 'CONTRAINDICATED'").fetchall())
    assert loaded and not loaded & set(deleted)


def test_ingredient_coverage(official):
    con = official.cursor()
    total, covered = con.execute("""SELECT count(DISTINCT item_seq),
        count(DISTINCT item_seq) FILTER (WHERE item_seq IN (SELECT item_seq FROM item_ingredients))
        FROM appearance""").fetchall()[0]
    assert covered / total > 0.70
    # The M->D bridge uses single-ingredient rows only: simvastatin's raw material maps to simvastatin alone.
    assert con.execute("SELECT list(ingr_code) FROM ori_map WHERE m_code = 'M089710'").fetchall()[0][0] == ["D000027"]


def _copy_sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for sub in ("dur_ingredient_files", "pill_identification"):
        shutil.copytree(MFDS / sub, src / sub)
    return src


@pytest.mark.parametrize(
    ("target", "damage", "message"),
    [
        ("pill_identification/OpenData_PotOpenTabletIdntfc20230319.xls", b"\x00garbage", "not one"),
        ("dur_ingredient_files/OpenData_PotOpenDurIngr_AC20260312.csv", "헤더,없음\n1,2\n".encode(), "unexpected columns"),
        ("dur_ingredient_files/OpenData_PotOpenDurIngr_BC20260312.csv", b"\xff\xfe\x00\x81bad", "not UTF-8"),
    ],
)
def test_broken_file_fails_and_keeps_previous_db(tmp_path, target, damage, message):
    src = _copy_sources(tmp_path)
    db = tmp_path / "p.duckdb"
    import_dir(src, db)
    before = db.read_bytes()
    path = src / target
    path.chmod(0o644)
    path.write_bytes(damage)
    with pytest.raises(DataFileError, match=message) as err:
        import_dir(src, db)
    assert path.name in str(err.value)
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("p.duckdb.building-*"))


def test_interrupted_build_keeps_previous_db(tmp_path, monkeypatch):
    from pillcheck.catalog import importer

    src = _copy_sources(tmp_path)
    db = tmp_path / "p.duckdb"
    import_dir(src, db)
    before = db.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importer, "_insert", boom)
    with pytest.raises(KeyboardInterrupt):
        import_dir(src, db)
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("p.duckdb.building-*"))


def test_api_json_responses_import(tmp_path):
    """Real OpenAPI JSON responses (envelope, empty result, products) go through the same importer."""
    src = tmp_path / "src"
    shutil.copytree(MFDS / "api_samples", src / "api_samples")
    shutil.copytree(MFDS / "dur_ingredient_files", src / "dur")
    import_dir(src, tmp_path / "j.duckdb")
    with duckdb.connect(str(tmp_path / "j.duckdb"), read_only=True) as con:
        names = dict(con.execute("SELECT item_seq, item_name FROM items").fetchall())
        assert names["200000913"].startswith("코니트라캡슐")  # from the DUR 품목 병용금기 response
        assert names["200400682"].startswith("심바스테롤정")  # its MIXTURE_ side
        assert "197700120" in names  # e약은요 / 허가 목록
        easy = con.execute("SELECT efficacy FROM easy_info WHERE item_seq = '202005623'").fetchall()
        assert easy and "발열" in easy[0][0]


def test_search_puts_the_brand_s_base_pill_first(official):
    """'타이레놀' is 타이레놀정500 (a pill, the brand's base product), not a children's powder or a cold variant;
    equal fuzzy scores used to fall back to the alphabet."""
    first = {q: [h.name for h in official.search.search(q, 5)] for q in ("타이레놀", "게보린", "리피토")}
    assert first["타이레놀"][0].startswith("타이레놀정500"), first
    assert first["게보린"][0].startswith("게보린정"), first
    assert first["리피토"][0].startswith("리피토정10"), first
    assert not any("산" in n.split("(")[0][-3:] for n in first["타이레놀"][:3])  # powders after the pills
