"""HIRA 약제급여목록 (the health-insurance reimbursement list) joined to the MFDS catalog.

The list carries what the pill catalog lacks: the package barcode (표준코드), the EDI code, the 주성분코드 (one
code per ingredient + strength + route + form, so products sharing it are interchangeable for every DUR check),
the English generic name and strength, and, by being on it, evidence that a product is on the market now. It has
no ITEM_SEQ: products are joined by name (spacing, the ``_(…)`` strength suffix and unit spellings normalised),
and only where the join is unambiguous. Every join keeps its method, so ``data stats`` can say what came from where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from pillcheck.catalog.normalize import name_key

# Unit spellings in product names: 밀리그램 / 밀리그람 / mg are one unit, and so on.
_UNITS = (
    (re.compile(r"밀리그람|밀리그램|mg"), "mg"),
    (re.compile(r"마이크로그람|마이크로그램|mcg|㎍|μg|µg"), "mcg"),
    (re.compile(r"밀리리터|ml|㎖"), "ml"),
    (re.compile(r"그람|그램"), "g"),
    (re.compile(r"국제단위|iu"), "iu"),
)
_SUFFIX = re.compile(r"_\((?:[^()]|\([^()]*\))*\)\s*$")  # '_(40mg/1정)', '_(0.5g(1정중))'
_PARENS = re.compile(r"\([^()]*\)")
_COMPANY = re.compile(r"\(주\)|㈜|\(유\)|\(재\)|주식회사|유한회사|\s")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_HYDRATES = _words("hemihydrate monohydrate dihydrate trihydrate tetrahydrate pentahydrate sesquihydrate hydrate "
                   "anhydrous")
# Salt, ester and hydrate words that name the form of a substance, not another substance.
_SALT_WORDS = _HYDRATES | _words("""
hydrochloride hcl dihydrochloride hydrobromide hydroiodide sodium disodium potassium calcium magnesium
besylate besilate camsylate camsilate mesylate mesilate dimesylate maleate fumarate hemifumarate
succinate tartrate bitartrate citrate sulfate sulphate bisulfate hydrogensulfate acetate phosphate diphosphate
nitrate bromide iodide oxalate malate mandelate tosylate tosilate lactate gluconate napadisilate pamoate embonate
valerate propionate dipropionate butyrate stearate palmitate salicylate xinafoate orotate trometamol tromethamine
meglumine arginine lysine erbumine tert butylamine olamine cilexetil medoxomil axetil pivoxil proxetil
hyclate furoate micronized
""")
# What is left of 'lithium carbonate' or 'magnesium oxide' without its salt words is no substance of its own.
_INORGANIC = _words("carbonate bicarbonate hydrogencarbonate chloride oxide hydroxide fluoride sulfide silicate "
                    "trisilicate hydrogen dihydrogen monobasic dibasic tribasic edetate acid")
_AMOUNT = re.compile(r"\s[\d.]+\s*(?:mg|g|mcg|μg|k?i\.?u|단위|ml|%|만)", re.IGNORECASE)


def product_key(name: str | None) -> str:
    """A product name as both sources can agree on it: no ``_(…)`` suffix, spaces or case; one unit spelling."""
    s = _SUFFIX.sub("", name or "").lower()
    s = re.sub(r"\s+", "", s)
    for pattern, unit in _UNITS:
        s = pattern.sub(unit, s)
    return s


def bare_key(key: str) -> str:
    """A product key without its parenthesised parts (one source writes the ingredient there, the other not)."""
    return _PARENS.sub("", key)


def company_key(name: str | None) -> str:
    return _COMPANY.sub("", name or "")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses ('a (as b 5mg), c 10mg' -> two parts)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class Component:
    """One ingredient of a 주성분명: the substance as listed (often a salt) and the moiety it is given as."""

    name: str  # 'amlodipine besylate'
    moiety: str | None  # 'amlodipine' (from '(as amlodipine 5mg)'), None when not given


def components(generic_name: str | None) -> list[Component]:
    """``'amlodipine besylate (as amlodipine   5mg), valsartan   0.16g'`` -> its two components."""
    out = []
    for part in _split_top(generic_name or ""):
        moiety = None
        m = re.search(r"\(as\s+([^()]*?)(?:\s+[\d.]+\s*\S*)?\)", part)
        if m:
            moiety = m.group(1).strip() or None
            part = part[: m.start()]
        part = _AMOUNT.split(" " + part, maxsplit=1)[0]
        part = _PARENS.sub(" ", part).strip(" ,")
        if part:
            out.append(Component(re.sub(r"\s+", " ", part).lower(), moiety.lower() if moiety else None))
    return out


def _strip_salts(name: str) -> str:
    """'amlodipine besylate' -> 'amlodipine'; a name that would be left with only inorganic words stays whole."""
    kept = [w for w in name.split() if w not in _SALT_WORDS]
    return " ".join(kept) if any(w not in _INORGANIC for w in kept) else name


def _canon(name: str) -> str:
    """A comparison key that folds English spelling variants of one substance: 'risedronic acid' / 'risedronate',
    'cyclosporine' / 'cyclosporin', 'carbocisteine' / 'carbocysteine' (INN / USAN)."""
    key = name_key(name).replace("cistein", "cystein")
    if key.endswith("icacid") and len(key) > 9:
        key = key[:-6] + "ate"
    return key[:-1] if key.endswith("e") and len(key) > 5 else key


def _wordset(name: str) -> frozenset[str]:
    """The words of a name in any order, hydrates aside: 'Sodium Phosphate Dibasic Dihydrate' is 'dibasic sodium
    phosphate'."""
    return frozenset(w for w in re.split(r"[^0-9a-z]+", name.lower()) if w and w not in _HYDRATES)


class IngredientNames:
    """English substance names -> DUR ingredient codes (D######), from the names the DUR rules themselves carry."""

    def __init__(self, codes: pd.Series, eng_names: pd.Series) -> None:
        self.exact: dict[str, set[str]] = {}
        self.stripped: dict[str, set[str]] = {}
        self.wordsets: dict[frozenset[str], set[str]] = {}
        for code, eng in zip(codes, eng_names):
            if not eng:
                continue
            low = re.sub(r"\s+", " ", re.sub(r"\(.*?\)", " ", str(eng))).strip().lower()
            self.exact.setdefault(_canon(low), set()).add(code)
            self.stripped.setdefault(_canon(_strip_salts(low)), set()).add(code)
            self.wordsets.setdefault(_wordset(low), set()).add(code)
        self.wordsets.pop(frozenset(), None)
        self.exact.pop("", None)
        self.stripped.pop("", None)

    def lookup(self, comp: Component) -> tuple[set[str], float]:
        """DUR codes for one component and how sure the match is. Every code whose name is the listed substance or
        the moiety it is given as, in any word order (0.9), and every code whose name is that substance without salt
        and hydrate words (0.85 when only those match): the DUR data gives one substance several codes ('Morphine' and
        'Morphine Sulfate'), and a rule may name either. Empty when no DUR rule names the substance."""
        exact = set().union(*(self.exact.get(_canon(n), set()) | self.wordsets.get(_wordset(n), set())
                              for n in (comp.name, comp.moiety) if n))
        loose = set().union(*(self.exact.get(k, set()) | self.stripped.get(k, set())
                              for k in {_canon(_strip_salts(n)) for n in (comp.name, comp.moiety) if n}))
        return exact | loose, 0.9 if exact else 0.85


def ingredient_groups(gnl_codes: pd.Series, item_seqs: pd.Series, known: pd.DataFrame) -> dict[str, frozenset[str]]:
    """주성분코드 ingredient part (its first four characters) -> the DUR codes its catalog products carry.

    Learned from the products whose own official data (DUR 품목, 허가 M-codes) names their ingredients: a group is
    kept when at least two such products share it and four in five of them agree on one set of codes. It names
    substances the English names miss ('valproate magnesium' -> valproic acid) and checks a join independently of
    names: a product joined to the wrong entry would carry another group's ingredients.
    """
    own = known.dropna(subset=["ingr_code"]).groupby("item_seq")["ingr_code"].agg(frozenset)
    sets: dict[str, list[frozenset[str]]] = {}
    for gnl, seq in zip(gnl_codes, item_seqs):
        if gnl and seq in own.index:
            sets.setdefault(gnl[:4], []).append(own[seq])
    out = {}
    for group, found in sets.items():
        best = max(set(found), key=found.count)
        if len(found) >= 2 and found.count(best) >= 0.8 * len(found):
            out[group] = best
    return out


def join_items(hira: pd.DataFrame, items: pd.DataFrame, edi: pd.DataFrame | None = None) -> pd.DataFrame:
    """HIRA rows -> ITEM_SEQ. Returns ``hira`` with ``item_seq`` and ``join_method`` (None where not joined).

    0. ``edi``: the EDI 제품코드, where an MFDS source carries it for the product (허가, the 낱알식별 API) and names
       one product with it (``edi``: item_seq, edi_code).
    1. ``name``: the normalised product name, when the catalog product's rows on the list all carry one
       주성분코드 (the same product in several packs) and no other catalog product has that name.
    2. ``name_company``: the name without its parenthesised parts plus the same company, for products one source
       writes with the ingredient in parentheses and the other without; unique on both sides again.
    A name two catalog products share, or one that meets two 주성분코드, is ambiguous and not joined.
    """
    out = hira.copy()
    out["item_seq"] = None
    out["join_method"] = None
    if edi is not None and len(edi):
        pairs = edi.dropna().drop_duplicates()
        pairs = pairs[pairs.groupby("edi_code")["item_seq"].transform("nunique") == 1]
        by_edi = dict(zip(pairs["edi_code"], pairs["item_seq"]))
        hit = out["edi_code"].map(by_edi)
        out.loc[hit.notna(), "item_seq"] = hit[hit.notna()]
        out.loc[hit.notna(), "join_method"] = "edi"
    keys = out["name"].map(product_key)
    bare = keys.map(bare_key)
    comp = out["entp_name"].map(company_key)
    cat = pd.DataFrame({"item_seq": items["item_seq"], "key": items["item_name"].map(product_key),
                        "entp": items["entp_name"].map(company_key)})
    cat["bare"] = cat["key"].map(bare_key)
    for method, hkey, ckey in (("name", keys, cat["key"]), ("name_company", bare + "|" + comp, cat["bare"] + "|" + cat["entp"])):
        todo = out["item_seq"].isna()
        unique_cat = ckey.groupby(ckey).transform("size") == 1
        seq_by_key = dict(zip(ckey[unique_cat], cat["item_seq"][unique_cat]))
        cand = hkey[todo].map(seq_by_key)
        frame = pd.DataFrame({"seq": cand, "gnl": out.loc[todo, "gnl_code"]}).dropna(subset=["seq"])
        one_code = frame.groupby("seq")["gnl"].transform("nunique") == 1
        frame = frame[one_code]
        taken = set(out["item_seq"].dropna())
        frame = frame[~frame["seq"].isin(taken)]
        out.loc[frame.index, "item_seq"] = frame["seq"]
        out.loc[frame.index, "join_method"] = method
    return out


def item_market(joined: pd.DataFrame) -> pd.DataFrame:
    """One row per joined catalog product: its 주성분코드 and how it was joined."""
    return joined.dropna(subset=["item_seq"]).groupby("item_seq", as_index=False).agg(
        gnl_code=("gnl_code", "first"), gnl_name=("gnl_name", "first"), join_method=("join_method", "first"))


def ingredients(joined: pd.DataFrame, names: IngredientNames, kor: dict[str, str],
                groups: dict[str, frozenset[str]]) -> pd.DataFrame:
    """item_ingredients rows (source ``hira``) from the generic names of joined products, plus the DUR codes the
    product's 주성분코드 group carries (``ingredient_groups``).

    A component that no DUR rule names is kept with no code (the product is still checked: no rule applies to
    that substance). Rows are named by the DUR ingredient's Korean name where there is one, so that a product's
    ingredients count the same whichever source named them (복합 rules count a product's ingredients).
    """
    j = joined.dropna(subset=["item_seq"]).drop_duplicates("item_seq")
    rows = []
    for seq, generic, gnl, method in zip(j["item_seq"], j["gnl_name"], j["gnl_code"], j["join_method"]):
        penalty = 0.05 if method == "name_company" else 0.0
        named: set[str] = set()
        for comp in components(generic):
            codes, conf = names.lookup(comp)
            named |= codes
            if codes:
                rows.extend((seq, c, kor.get(c) or comp.name, round(conf - penalty, 3)) for c in sorted(codes))
            else:
                rows.append((seq, None, comp.name, round(conf - penalty, 3)))
        for code in sorted(groups.get((gnl or "")[:4], frozenset()) - named):
            rows.append((seq, code, kor.get(code) or code, round(0.85 - penalty, 3)))
    df = pd.DataFrame(rows, columns=["item_seq", "ingr_code", "ingr_name", "confidence"])
    df["m_code"] = None
    df["source"] = "hira"
    return df


def list_date(file_name: str) -> str | None:
    """'drug_prices_2026-04.csv' -> '2026-04' (the month the list applies to), None if the name has no date."""
    m = re.search(r"(20\d{2})[-._년]?\s?(0?[1-9]|1[0-2])(?!\d)", file_name)
    return f"{m.group(1)}-{int(m.group(2)):02d}" if m else None
