"""The DUR checks: item codes (+ an optional profile) -> typed warnings, as SQL over the catalog.

Everything a newcomer needs to audit the safety logic is in this file: the one query that finds every rule
hit, the severities, and the texts. Absence of a warning is never silent: the result lists the items that
could not be checked and the checks that did not run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import duckdb

SEVERITY_ORDER = {"critical": 0, "warning": 1, "caution": 2, "info": 3}

# kind -> (severity, 한글 label). PREGNANCY grade 1 is raised to critical below.
KINDS = {
    "CONTRAINDICATED": ("critical", "병용금기"),
    "AGE": ("critical", "특정연령대금기"),
    "PREGNANCY": ("warning", "임부금기"),
    "SAME_INGREDIENT": ("warning", "동일성분중복"),
    "DUPLICATE_THERAPY": ("warning", "효능군중복"),
    "ELDERLY": ("caution", "노인주의"),
    "DOSE": ("caution", "용량주의"),
    "DURATION": ("caution", "투여기간주의"),
    "SPLIT": ("caution", "분할주의"),
}

# Which rules apply to which product never depends on the other products: form scope, and 복합 rules only
# when the product is a combination that also contains every listed partner ingredient. The importer
# materialises this once (``item_rules``), so a check only looks up the few selected products.
MATERIALIZE = """
CREATE TABLE item_rules AS
WITH ii AS (
    SELECT x.item_seq, x.ingr_code, any_value(x.ingr_name) AS item_ingr_name, max(x.confidence) AS confidence,
           any_value(i.form_cat) AS form_cat
    FROM item_ingredients x JOIN items i USING (item_seq)
    WHERE x.ingr_code IS NOT NULL
    GROUP BY ALL
),
-- A product's ingredients by code and by name key: the same substance can carry two DUR codes (카페인 D000852
-- in the product data, 카페인무수물 D001266 in a 복합 rule), so a 복합 partner also counts when a product
-- ingredient's name contains the partner's name.
codes AS (
    SELECT item_seq, list(DISTINCT ingr_code) FILTER (WHERE ingr_code IS NOT NULL) AS codes,
           list(DISTINCT {key}) FILTER (WHERE ingr_name IS NOT NULL) AS names,
           count(DISTINCT coalesce({key}, ingr_code, m_code)) AS n
    FROM item_ingredients GROUP BY item_seq
)
SELECT ii.item_seq, ii.confidence, ii.item_ingr_name, c.codes AS item_codes, c.names AS item_names, c.n AS item_n,
       r.kind, r.ingr_code, r.ingr_name, r.mix_type, r.partner_code, r.partner_name, r.partner_mix_type,
       r.partner_mix_codes, r.partner_mix_names, r.grade, r.age_base, r.age_op, r.age_years, r.max_qty, r.max_days,
       r.effect_group, r.series, r.reason, r.remark, r.notice_date
FROM ii JOIN dur_rules r ON r.ingr_code = ii.ingr_code JOIN codes c ON c.item_seq = ii.item_seq
WHERE (r.form_cats IS NULL OR list_contains(r.form_cats, ii.form_cat))
  AND (coalesce(r.mix_type, '단일') <> '복합'
       OR (c.n >= 2 AND list_bool_and([
             list_contains(c.codes, r.mix_codes[i])
             OR list_bool_or([contains(x, r.mix_names[i]) FOR x IN coalesce(c.names, [])])
           FOR i IN range(1, len(r.mix_codes) + 1)]) IS NOT false))
ORDER BY ii.item_seq;
CREATE INDEX item_rules_item ON item_rules (item_seq);
""".replace("{key}", "lower(regexp_replace(ingr_name, '[^0-9A-Za-z가-힣]', '', 'g'))")

_LOAD_RULES = """
SELECT item_seq, kind, ingr_code, coalesce(ingr_name, item_ingr_name), partner_code, partner_name,
       partner_mix_type, partner_mix_codes, partner_mix_names, grade, age_base, age_op, age_years, max_qty, max_days,
       effect_group, series, reason, remark, notice_date, confidence
FROM item_rules
"""
_LOAD_INGREDIENTS = """
SELECT item_seq, ingr_code, any_value(ingr_name), max(confidence)
FROM item_ingredients WHERE ingr_code IS NOT NULL GROUP BY ALL
"""
_LOAD_NAMES = """
SELECT item_seq, list(DISTINCT {key}) FILTER (WHERE ingr_name IS NOT NULL),
       count(DISTINCT coalesce({key}, ingr_code, m_code))
FROM item_ingredients GROUP BY item_seq
""".replace("{key}", "lower(regexp_replace(ingr_name, '[^0-9A-Za-z가-힣]', '', 'g'))")
_LOAD_ITEMS = """
SELECT i.item_seq, i.item_name, EXISTS (SELECT 1 FROM item_ingredients x WHERE x.item_seq = i.item_seq)
FROM items i
"""
_LOAD_SPLIT = "SELECT item_seq, reason, remark, notice_date FROM split_rules"


@dataclass(frozen=True)
class _Rule:
    kind: str
    ingr_code: str
    ingr_name: str | None
    partner_code: str | None
    partner_name: str | None
    partner_mix_type: str | None
    partner_mix_codes: tuple[str, ...]
    partner_mix_names: tuple[str, ...]
    grade: str | None
    age_base: str | None
    age_op: str | None
    age_years: float | None
    max_qty: str | None
    max_days: str | None
    effect_group: str | None
    series: str | None
    reason: str | None
    remark: str | None
    notice_date: str | None
    confidence: float


class DurIndex:
    """The materialised ``item_rules`` grouped by product, read once from the catalog.

    A DuckDB query costs ~2 ms per scan on two cores; a check touches a handful of products, so the rules that
    apply to each product (decided in SQL, see MATERIALIZE) are held per product and paired here in Python.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.rules: dict[str, list[_Rule]] = defaultdict(list)
        for seq, *vals in con.execute(_LOAD_RULES).fetchall():
            vals[6], vals[7] = tuple(vals[6] or ()), tuple(vals[7] or ())
            self.rules[seq].append(_Rule(*vals))
        self.ingredients: dict[str, dict[str, tuple[str | None, float]]] = defaultdict(dict)
        for seq, code, name, conf in con.execute(_LOAD_INGREDIENTS).fetchall():
            self.ingredients[seq][code] = (name, conf)
        self.names = {seq: (tuple(names or ()), n) for seq, names, n in con.execute(_LOAD_NAMES).fetchall()}
        self.items = {seq: (name, has) for seq, name, has in con.execute(_LOAD_ITEMS).fetchall()}
        self.split = {seq: (reason, remark, date) for seq, reason, remark, date in con.execute(_LOAD_SPLIT).fetchall()}
        self.data = data_kind(con)


def _age_matches(rule: _Rule, age: float) -> bool:
    if rule.age_years is None:
        return False
    return {"<": age < rule.age_years, "<=": age <= rule.age_years, ">": age > rule.age_years,
            ">=": age >= rule.age_years}.get(rule.age_op or "", False)


def _has_mix(idx: DurIndex, item: str, rule: _Rule) -> bool:
    """The partner side of a 복합 병용금기 rule: a combination product holding every listed partner ingredient
    (by code, or by name as in MATERIALIZE)."""
    names, n = idx.names.get(item, ((), 0))
    codes = idx.ingredients.get(item, {})
    return n >= 2 and all(code in codes or any(name and name in x for x in names)
                          for code, name in zip(rule.partner_mix_codes, rule.partner_mix_names))


def _hits(idx: DurIndex, items: list[str], profile: Profile) -> list[dict]:
    """Every rule hit as a flat row; pairs come once per direction a rule is listed in."""
    rows: list[dict] = []

    def add(kind: str, a: str, b: str | None, ingr_a: str | None, ingr_b: str | None, name_a, name_b,
            rule: _Rule | None, detail: str | None, conf: float) -> None:
        rows.append({"kind": kind, "item_a": a, "item_b": b, "ingr_a": ingr_a, "ingr_b": ingr_b, "name_a": name_a,
                     "name_b": name_b, "reason": rule.reason if rule else None,
                     "notice_date": rule.notice_date if rule else None, "remark": rule.remark if rule else None,
                     "detail": detail, "confidence": conf})

    for i, a in enumerate(items):
        for rule in idx.rules.get(a, ()):
            k = rule.kind
            if k == "CONTRAINDICATED":  # directed A->B: every item plays side A once, so both directions are found
                for b in items:
                    partner = idx.ingredients.get(b, {}).get(rule.partner_code) if b != a else None
                    if partner is None:
                        continue
                    if rule.partner_mix_type == "복합" and not _has_mix(idx, b, rule):
                        continue
                    add(k, a, b, rule.ingr_code, rule.partner_code, rule.ingr_name, rule.partner_name or partner[0],
                        rule, None, min(rule.confidence, partner[1]))
            elif k == "DUPLICATE_THERAPY":
                for b in items[i + 1:]:
                    for other in idx.rules.get(b, ()):
                        if (other.kind == k and other.effect_group == rule.effect_group
                                and (other.series or "") == (rule.series or "") and other.ingr_code != rule.ingr_code):
                            add(k, a, b, rule.ingr_code, other.ingr_code, rule.ingr_name, other.ingr_name, rule,
                                rule.effect_group + (f" / {rule.series}" if rule.series else ""),
                                min(rule.confidence, other.confidence))
            elif (k in ("DOSE", "DURATION") or (k == "PREGNANCY" and profile.pregnant)
                  or (k == "ELDERLY" and profile.age is not None and profile.age >= 65)
                  or (k == "AGE" and profile.age is not None and _age_matches(rule, profile.age))):
                detail = {"AGE": rule.age_base, "PREGNANCY": rule.grade, "DOSE": rule.max_qty,
                          "DURATION": rule.max_days}.get(k)
                add(k, a, None, rule.ingr_code, None, rule.ingr_name, None, rule, detail, rule.confidence)
        for b in items[i + 1:]:  # the same DUR ingredient in two products (two acetaminophen products)
            for code in idx.ingredients.get(a, {}).keys() & idx.ingredients.get(b, {}).keys():
                (name, ca), (_, cb) = idx.ingredients[a][code], idx.ingredients[b][code]
                add("SAME_INGREDIENT", a, b, code, code, name, name, None, None, min(ca, cb))
        if a in idx.split:
            reason, remark, date = idx.split[a]
            rows.append({"kind": "SPLIT", "item_a": a, "item_b": None, "ingr_a": None, "ingr_b": None, "name_a": None,
                         "name_b": None, "reason": reason, "notice_date": date, "remark": remark, "detail": None,
                         "confidence": 1.0})
    return rows


PREGNANCY_AGES = (10, 60)  # outside these, "pregnant" is asked about (Profile.implausible)


@dataclass(frozen=True)
class Profile:
    """What the age/pregnancy rules need to know about the person. Unknown stays None: those checks skip
    (``pregnant=False`` is known: the pregnancy check ran, and no rule applies)."""

    age: float | None = None
    pregnant: bool | None = None

    def __post_init__(self) -> None:
        if self.age is not None and not 0 <= self.age <= 130:
            raise ValueError(f"age must be between 0 and 130 years, got {self.age}")

    @property
    def implausible(self) -> bool:
        """Pregnant at an age where that is next to impossible: a slip of the finger to ask about (the check
        still runs with both, which can only add warnings)."""
        return bool(self.pregnant) and self.age is not None and not PREGNANCY_AGES[0] <= self.age <= PREGNANCY_AGES[1]


@dataclass
class Warning:  # noqa: A001 (the architecture's name for it; never raised)
    kind: str
    severity: str
    items: list[str]
    ingredients: list[str]
    reason: str
    notice_date: str | None
    type_name: str
    item_names: list[str] = field(default_factory=list)
    ingredient_names: list[str] = field(default_factory=list)
    detail: str | None = None
    confidence: float = 1.0
    source: str = "MFDS DUR"


@dataclass
class CheckResult:
    warnings: list[Warning]
    unchecked: list[str]
    unknown: list[str]
    checks_run: list[str]
    checks_skipped: list[str]
    data: str

    def to_dict(self) -> dict:
        return {
            "warnings": [asdict(w) for w in self.warnings],
            "unchecked": self.unchecked,
            "unknown": self.unknown,
            "checks_run": self.checks_run,
            "checks_skipped": self.checks_skipped,
            "data": self.data,
        }


def _reason(kind: str, row: dict) -> str:
    """The official reason text, led by the rule's own numbers (max dose, age, grade) where it has them."""
    detail = row["detail"] or ""
    lead = {
        "DOSE": f"1일 최대용량 {detail}", "DURATION": f"최대 투여기간 {detail}", "AGE": f"{detail} 금기",
        "PREGNANCY": f"임부금기 {detail}".strip(),
    }.get(kind) if detail or kind == "PREGNANCY" else None
    official = (row["reason"] or "") + (f" ({row['remark']})" if row["remark"] else "")
    if official:
        return f"{lead}: {official}" if lead else official
    return lead or {
        "SAME_INGREDIENT": f"같은 성분({row['name_a'] or row['ingr_a']})이 두 제품에 들어 있습니다 / "
                           "the same ingredient is in two products",
        "DUPLICATE_THERAPY": f"같은 효능군({detail}) 약이 겹칩니다 / same therapeutic group",
        "ELDERLY": "노인 투여 주의 / caution in the elderly",
        "SPLIT": "쪼개거나 부수어 복용하지 마십시오 / do not split or crush",
        "CONTRAINDICATED": "병용금기 / do not take together",
    }.get(kind, kind)


def check(idx: DurIndex, item_seqs: list[str], profile: Profile | None = None) -> CheckResult:
    """Every DUR warning for the given products (order kept, duplicates ignored) and this person."""
    profile = profile or Profile()
    items = list(dict.fromkeys(str(s).strip() for s in item_seqs if str(s).strip()))
    known = [s for s in items if s in idx.items]
    names = {s: idx.items[s][0] for s in known}
    warnings: dict[tuple, Warning] = {}
    for row in _hits(idx, known, profile):
        kind = row["kind"]
        severity, type_name = KINDS[kind]
        if kind == "PREGNANCY" and (row["detail"] or "").startswith("1"):
            severity = "critical"
        pair = [s for s in (row["item_a"], row["item_b"]) if s]
        ingr = [c for c in (row["ingr_a"], row["ingr_b"]) if c]
        key = (kind, frozenset(pair), frozenset(ingr), row["reason"], row["detail"])
        if key in warnings:  # a rule listed in both directions, or twice for one pair
            continue
        warnings[key] = Warning(
            kind=kind, severity=severity, items=pair, ingredients=list(dict.fromkeys(ingr)),
            reason=_reason(kind, row), notice_date=row["notice_date"], type_name=type_name,
            item_names=[names.get(s, s) for s in pair],
            ingredient_names=list(dict.fromkeys(n for n in (row["name_a"], row["name_b"]) if n)),
            detail=row["detail"], confidence=round(float(row["confidence"]), 3),
            source="pillcheck" if kind == "SAME_INGREDIENT" else "MFDS DUR",
        )
    order = {s: i for i, s in enumerate(items)}
    result = sorted(warnings.values(), key=lambda w: (SEVERITY_ORDER[w.severity], list(KINDS).index(w.kind),
                                                      [order.get(s, 0) for s in w.items]))
    run = ["CONTRAINDICATED", "SAME_INGREDIENT", "DUPLICATE_THERAPY", "DOSE", "DURATION", "SPLIT"]
    skipped = []
    for kind, needed in (("AGE", profile.age is not None), ("ELDERLY", profile.age is not None),
                         ("PREGNANCY", profile.pregnant is not None)):
        (run if needed else skipped).append(kind)
    return CheckResult(
        warnings=result,
        unchecked=[s for s in known if not idx.items[s][1]],
        unknown=[s for s in items if s not in idx.items],
        checks_run=run, checks_skipped=skipped, data=idx.data,
    )


# A product a pill may be (an unsure pill's candidate at least this likely, at most POSSIBLE_TOP of them) is
# checked as what it would mean: the serious warnings it would raise are shown as possible, never as found.
POSSIBLE_P, POSSIBLE_TOP = 0.05, 3
POSSIBLE_SEVERITIES = ("critical", "warning")


def possible_warnings(idx: DurIndex, items: list[str], pending: dict[int, list[tuple[str, float]]],
                      profile: Profile | None = None) -> list[dict]:
    """What the pills that are not identified could mean: for each pill (its number -> its candidates as
    (ITEM_SEQ, probability), best first), the critical and warning-level hits its likely products would raise with
    ``items`` (the checked products), alone (age, pregnancy), or with another such pill's likely products.

    One check over the checked products plus every likely product; a hit counts when it involves a likely product
    that is not checked anyway (so never a warning the check of ``items`` found), and never two products of the
    same pill (a pill is one product).
    Each entry: the warning, ``if`` (pill number -> the product it would be) and ``p`` (how likely that is, the
    product of the candidates' probabilities). Most severe and likeliest first.
    """
    likely = {n: [(s, p) for s, p in cands[:POSSIBLE_TOP] if p >= POSSIBLE_P] for n, cands in pending.items()}
    owners: dict[str, dict[int, float]] = defaultdict(dict)  # product -> pill number -> probability
    for n, cands in likely.items():
        for seq, p in cands:
            owners[seq][n] = p
    if not owners:
        return []
    checked = set(items)
    out = []
    for w in check(idx, [*items, *owners], profile).warnings:
        if w.severity not in POSSIBLE_SEVERITIES:
            continue
        ways: list[dict[int, str]] = [{}]  # each way the hit's products can be the pills' (one product per pill)
        for seq in w.items:
            if seq in owners and seq not in checked:  # a checked product is there whatever the pill is
                ways = [{**way, n: seq} for way in ways for n in owners[seq] if n not in way]
        out += [{"warning": asdict(w), "if": {str(n): seq for n, seq in sorted(way.items())},
                 "p": round(math.prod(owners[seq][n] for n, seq in way.items()), 4)}
                for way in ways if way]  # empty: the hit is among checked products only, found by their own check
    return sorted(out, key=lambda e: (SEVERITY_ORDER[e["warning"]["severity"]], -e["p"]))


def condition_text(entry: dict) -> str:
    """A possible warning's condition in words: 'if #2 is 200400682 and #3 is ...'."""
    return "if " + " and ".join(f"#{n} is {seq}" for n, seq in entry["if"].items())


def data_kind(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute("SELECT value FROM meta WHERE key = 'data'").fetchall()
    return rows[0][0] if rows else "unknown"
