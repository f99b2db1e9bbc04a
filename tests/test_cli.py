"""The CLI as a user runs it: real processes, the demo catalog, JSON contracts and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pillcheck.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_check_json_contract(demo_db):
    out = run("check", "999900001", "999900002", "999900008", "123456789", "--json", "--db", str(demo_db))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["data"] == "demo"
    assert result["unchecked"] == ["999900008"]
    assert result["unknown"] == ["123456789"]
    (w,) = [w for w in result["warnings"] if w["kind"] == "CONTRAINDICATED"]
    assert set(w) >= {"kind", "severity", "items", "ingredients", "reason", "notice_date"}
    assert w["severity"] == "critical" and set(w["items"]) == {"999900001", "999900002"}
    assert "근육손상위험증가, 가상의금기사유" in w["reason"]  # '|' in the nedrug text is a comma again


def test_check_profile_rules(demo_db):
    base = ["999900005", "999900006", "999900002", "999900001"]
    plain = json.loads(run("check", *base, "--json", "--db", str(demo_db)).stdout)
    kinds = {w["kind"] for w in plain["warnings"]}
    assert "DUPLICATE_THERAPY" in kinds and not kinds & {"AGE", "PREGNANCY", "ELDERLY"}
    assert set(plain["checks_skipped"]) == {"AGE", "ELDERLY", "PREGNANCY"}
    child = json.loads(run("check", *base, "--age", "8", "--json", "--db", str(demo_db)).stdout)
    assert [w["items"] for w in child["warnings"] if w["kind"] == "AGE"] == [["999900005"]]
    old = json.loads(run("check", *base, "--age", "70", "--pregnant", "--json", "--db", str(demo_db)).stdout)
    kinds = [w["kind"] for w in old["warnings"]]
    assert "ELDERLY" in kinds and "AGE" not in kinds
    preg = [w for w in old["warnings"] if w["kind"] == "PREGNANCY"]
    # grade 1 is critical; the injection-only rule on the capsule (999900001) does not fire
    assert [(w["items"], w["severity"]) for w in preg] == [(["999900006"], "critical")]
    severities = [w["severity"] for w in old["warnings"]]
    assert severities == sorted(severities, key=["critical", "warning", "caution", "info"].index)


def test_combination_rule_only_for_the_combination(demo_db):
    combo = json.loads(run("check", "999900009", "999900010", "--json", "--db", str(demo_db)).stdout)
    assert [w["kind"] for w in combo["warnings"]].count("CONTRAINDICATED") == 1
    single = json.loads(run("check", "999900011", "999900010", "--json", "--db", str(demo_db)).stdout)
    assert "CONTRAINDICATED" not in [w["kind"] for w in single["warnings"]]


def test_batch_json_lines(demo_db, tmp_path):
    batch = tmp_path / "b.jsonl"
    batch.write_text('["999900003", "999900004"]\n\n{"items": ["999900005"], "age": 5}\nnot json\n{"items": 3}\n')
    out = run("check", "--batch", str(batch), "--json", "--db", str(demo_db))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(lines) == 4
    assert {w["kind"] for w in lines[0]["warnings"]} >= {"SAME_INGREDIENT", "SPLIT", "DOSE"}
    assert [w["kind"] for w in lines[1]["warnings"]] == ["AGE"]
    assert lines[2]["line"] == 4 and "error" in lines[2]
    assert lines[3]["line"] == 5 and "list" in lines[3]["error"]
    stdin = run("check", "--batch", "-", "--db", str(demo_db), stdin='["999900001","999900002"]\n')
    assert json.loads(stdin.stdout)["warnings"][0]["kind"] == "CONTRAINDICATED"


def test_search_names_and_imprints(demo_db):
    by_name = json.loads(run("search", "데모스타틴", "--json", "--db", str(demo_db)).stdout)
    assert by_name["results"][0]["item_seq"] == "999900002" and by_name["data"] == "demo"
    by_imprint = json.loads(run("search", "dc", "--json", "--db", str(demo_db)).stdout)  # catalog: 마크분할선DC
    assert by_imprint["results"][0]["item_seq"] == "999900006"
    assert by_imprint["results"][0]["matched"] == "imprint"
    odd = run("search", "'; DROP TABLE items; --" + "x" * 5000, "--db", str(demo_db))
    assert odd.returncode == 0 and "Traceback" not in odd.stderr
    text = run("search", "데모펜", "--db", str(demo_db)).stdout
    assert "DEMO DATA" in text and "999900003" in text


def test_human_output_says_demo_and_what_was_not_checked(demo_db):
    out = run("check", "999900001", "999900008", "--db", str(demo_db)).stdout
    assert "DEMO DATA" in out and "could not be checked" in out and "999900008" in out


def test_stats(demo_db):
    stats = json.loads(run("data", "stats", "--json", "--db", str(demo_db)).stdout)
    assert stats["data"] == "demo" and stats["pill catalog items"] == 11
    assert stats["rules"]["병용금기"] == 2 and stats["catalog items with >=1 ingredient"] == 10


def test_errors_are_one_line_messages(tmp_path, demo_db):
    missing = run("check", "1", "--db", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 2 and "pillcheck data import" in missing.stderr and "Traceback" not in missing.stderr
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    bad = run("check", "1", "--db", str(junk))
    assert bad.returncode == 2 and "not a pillcheck catalog" in bad.stderr and "Traceback" not in bad.stderr
    age = run("check", "999900001", "--age", "-4", "--db", str(demo_db))
    assert age.returncode == 2 and "age" in age.stderr and "Traceback" not in age.stderr
    empty = run("check", "--db", str(demo_db))
    assert empty.returncode == 2 and "item codes" in empty.stderr
    nodir = run("data", "import", str(tmp_path / "nowhere"), "--db", str(tmp_path / "x.duckdb"))
    assert nodir.returncode == 2 and "not a directory" in nodir.stderr


def test_import_demo_says_demo(tmp_path):
    out = run("data", "demo", "--db", str(tmp_path / "d.duckdb"))
    assert out.returncode == 0 and "DEMO DATA" in out.stdout and (tmp_path / "d.duckdb").is_file()


def test_a_pill_named_as_a_group_says_so_in_the_text_output():
    """The leader of a group holds only its share of the group's probability: the line says the pill may be any of
    the interchangeable products and how sure the group is, so '[sure] ... 50%' is never left unexplained."""
    from pillcheck.cli import pill_line

    cand = {"item_seq": "1", "name": "가정", "score": 0.5, "evidence": {"group_probability": 0.9991}}
    pill = {"index": 2, "status": "sure", "candidates": [cand], "imprint_read": "AB12", "from_list": None,
            "group": ["7"]}
    line = pill_line(pill)
    assert line.startswith("  #2 [sure] 가정 (1, 50%)  read: AB12")
    assert "or one of 1 interchangeable products" in line and "99.9% together" in line
    assert "interchangeable" not in pill_line({**pill, "status": "unsure"})  # a group speaks only for a sure pill
    assert "my medicines" not in line and "· one of my medicines" in pill_line({**pill, "from_list": True})
