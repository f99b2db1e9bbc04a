"""Official files -> a new DuckDB catalog, swapped in atomically.

The build writes ``<db>.building-<pid>`` and renames it over ``<db>`` only after every table validated, so a
failed or interrupted import leaves the previous database serving.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
from rapidfuzz import fuzz, process

from pillcheck.catalog import hira
from pillcheck.catalog.normalize import (
    clean,
    form_category,
    form_scope_categories,
    name_key,
    normalize_imprint,
    parse_age_base,
    split_coded_names,
    split_codes,
)
from pillcheck.catalog.readers import DataFileError, SourceTable, read_dir
from pillcheck.safety import dur

log = logging.getLogger(__name__)

RULE_KINDS = {
    "병용금기": "CONTRAINDICATED", "특정연령대금기": "AGE", "임부금기": "PREGNANCY", "용량주의": "DOSE",
    "투여기간주의": "DURATION", "노인주의": "ELDERLY", "효능군중복": "DUPLICATE_THERAPY", "첨가제주의": "EXCIPIENT",
}
# Parenthesised parts of product names that are not ingredients.
_NAME_STOP = re.compile(r"수출|내수|병|포장|PTP|소분|\d+(mg|밀리그램|밀리그람|정|캡슐)|^\W*$", re.IGNORECASE)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column as cleaned text (None for every spelling of empty), object dtype so None stays None."""
    values = [clean(v) for v in df[name]] if name in df.columns else [None] * len(df)
    return pd.Series(values, index=df.index, dtype=object)


def _of_kind(tables: Iterable[SourceTable], kind: str) -> list[SourceTable]:
    return [t for t in tables if t.kind == kind]


# ---------------------------------------------------------------- rules
def _rule_frame(t: SourceTable) -> pd.DataFrame:
    df = t.df
    type_name = _col(df, "TYPE_NAME")
    unknown = set(type_name.dropna()) - set(RULE_KINDS)
    if unknown:
        raise DataFileError(f"{t.path}: unknown DUR type(s) {sorted(unknown)}")
    if df["INGR_CODE"].map(clean).isna().any():
        raise DataFileError(f"{t.path}: rows without a DUR ingredient code (INGR_CODE)")
    out = pd.DataFrame({
        "kind": type_name.map(RULE_KINDS),
        "type_name": type_name,
        "dur_seq": _col(df, "DUR_SEQ"),
        "mix_type": _col(df, "MIX_TYPE"),
        "ingr_code": _col(df, "INGR_CODE"),
        "ingr_name": _col(df, "INGR_NAME"),
        "ingr_eng": _col(df, "INGR_ENG_NAME"),
        "mix_codes": _col(df, "MIX_INGR").map(split_codes),
        "mix_raw": _col(df, "MIX_INGR"),
        "ori": _col(df, "ORI_INGR"),
        "class_name": _col(df, "CLASS_NAME"),
        "partner_class": _col(df, "MIXTURE_CLASS_NAME"),
        "partner_code": _col(df, "MIXTURE_INGR_CODE"),
        "partner_name": _col(df, "MIXTURE_INGR_NAME"),
        "partner_eng": _col(df, "MIXTURE_INGR_ENG_NAME"),
        "partner_mix_type": _col(df, "MIXTURE_MIX_TYPE"),
        "partner_mix_codes": _col(df, "MIXTURE_MIX_INGR").map(split_codes),
        "partner_mix_raw": _col(df, "MIXTURE_MIX_INGR"),
        "partner_ori": _col(df, "MIXTURE_ORI_INGR"),
        "form_scope": _col(df, "FORM_NAME"),
        "grade": _col(df, "GRADE"),
        "age_base": _col(df, "AGE_BASE"),
        "max_qty": _col(df, "MAX_QTY"),
        "max_days": _col(df, "MAX_DOSAGE_TERM"),
        "effect_group": _col(df, "EFFECT_CODE"),
        "series": _col(df, "SERS_NAME"),
        "reason": _col(df, "PROHBT_CONTENT"),
        "remark": _col(df, "REMARK"),
        "notice_date": _col(df, "NOTIFICATION_DATE"),
        "status": _col(df, "DEL_YN"),
        "origin": t.origin,
        "source": t.path.name,
    })
    if t.origin == "nedrug":
        # nedrug bulk files replaced commas by '|' in free text: give the reader the punctuation back.
        out["reason"] = out["reason"].map(lambda v: v.replace("|", ", ") if v else v)
    return out


def build_rules(tables: list[SourceTable]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All rule rows (active and deleted, for the code maps) and the active rules, one source per type.

    Per DUR type the OpenAPI dump wins over the nedrug bulk file when both are present: it is the newer
    publication and it carries the 삭제 (deleted) rows, which must stop firing.
    """
    frames = [_rule_frame(t) for t in _of_kind(tables, "dur_rule")]
    if not frames:
        raise DataFileError("no DUR ingredient rule files found (OpenData_PotOpenDurIngr_* or dur_*.csv/json)")
    allrows = pd.concat(frames, ignore_index=True)
    chosen = []
    for _kind, grp in allrows.groupby("kind", sort=True):
        api = grp[grp["origin"] == "api"]
        use = api if len(api) else grp
        chosen.append(use[use["status"].isna() | (use["status"] == "정상")])
    active = pd.concat(chosen, ignore_index=True)
    # The same publication read twice (a CSV dump beside its JSON pages) must not double the rules.
    content = active.drop(columns=["source"]).map(lambda v: tuple(v) if isinstance(v, list) else v)
    active = active[~content.duplicated()].reset_index(drop=True)
    ages = active["age_base"].map(parse_age_base)
    bad_age = active[(active["kind"] == "AGE") & ages.isna()]
    if len(bad_age):
        log.warning("%d age rules with an unreadable age base (kept, never fire): %s", len(bad_age),
                    sorted(set(bad_age["age_base"].astype(str)))[:5])
    active["age_op"] = ages.map(lambda a: a[0] if a else None)
    active["age_years"] = ages.map(lambda a: a[1] if a else None)
    active["form_cats"] = [form_scope_categories(f, r) for f, r in zip(active["form_scope"], active["remark"])]
    active["rule_id"] = range(1, len(active) + 1)
    return allrows, active


def build_ori_map(allrows: pd.DataFrame) -> pd.DataFrame:
    """M/I-code -> DUR code from single-ingredient rows only (복합 rows also list the partner's codes)."""
    rows = []
    base = allrows[allrows["kind"] != "EXCIPIENT"]
    for code_col, ori_col, mix_col in (("ingr_code", "ori", "mix_type"), ("partner_code", "partner_ori", "partner_mix_type")):
        single = base[(base[mix_col] == "단일") & base[code_col].notna()]
        for code, ori in zip(single[code_col], single[ori_col]):
            rows.extend((m, code, name) for m, name in split_coded_names(ori))
    return pd.DataFrame(rows, columns=["m_code", "ingr_code", "m_name"]).drop_duplicates(["m_code", "ingr_code"])


_MIX_NAME = re.compile(r"\[(D\d{6})\]([^/\[]*?)\(([^()]*)\)\s*(?=/|$)")


def build_ingredients(allrows: pd.DataFrame) -> pd.DataFrame:
    """DUR ingredient codes with names: rule subjects, 병용금기 partners and the 복합 partners in MIX lists."""
    a = allrows[["ingr_code", "ingr_name", "ingr_eng"]]
    b = allrows[["partner_code", "partner_name", "partner_eng"]].set_axis(a.columns, axis=1)
    mixed = [(code, kor.strip(), eng.strip()) for col in ("mix_raw", "partner_mix_raw")
             for v in allrows[col].dropna() for code, eng, kor in _MIX_NAME.findall(v)]
    c = pd.DataFrame(mixed, columns=a.columns)
    both = pd.concat([a, b, c]).dropna(subset=["ingr_code"])
    return both.groupby("ingr_code", as_index=False).agg(
        kor_name=("ingr_name", "first"), eng_name=("ingr_eng", "first")
    )


# ---------------------------------------------------------------- items and appearance
def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def build_catalog(tables: list[SourceTable]) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = [t.df for t in _of_kind(tables, "catalog")]
    if not frames:
        return pd.DataFrame(), pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    seq = _col(df, "ITEM_SEQ")
    if seq.isna().any() or not seq.str.fullmatch(r"\d{9}").all():
        bad = seq[seq.isna() | ~seq.fillna("").str.fullmatch(r"\d{9}")].head(3).tolist()
        raise DataFileError(f"catalog: ITEM_SEQ must be 9 digits (found {bad})")
    app = pd.DataFrame({
        "item_seq": seq,
        "image_url": _col(df, "ITEM_IMAGE"),
        "print_front": _col(df, "PRINT_FRONT"),
        "print_back": _col(df, "PRINT_BACK"),
        "norm_front": _col(df, "PRINT_FRONT").map(normalize_imprint),
        "norm_back": _col(df, "PRINT_BACK").map(normalize_imprint),
        "shape": _col(df, "DRUG_SHAPE"),
        "color_front": _col(df, "COLOR_CLASS1"),
        "color_back": _col(df, "COLOR_CLASS2"),
        "line_front": _col(df, "LINE_FRONT"),
        "line_back": _col(df, "LINE_BACK"),
        "leng_long": _num(_col(df, "LENG_LONG")),
        "leng_short": _num(_col(df, "LENG_SHORT")),
        "thick": _num(_col(df, "THICK")),
        "mark_front": _col(df, "MARK_CODE_FRONT"),
        "mark_back": _col(df, "MARK_CODE_BACK"),
        "mark_text_front": _col(df, "MARK_CODE_FRONT_ANAL"),
        "mark_text_back": _col(df, "MARK_CODE_BACK_ANAL"),
        "form": _col(df, "FORM_CODE_NAME"),
    }).drop_duplicates(["item_seq", "image_url"])
    items = pd.DataFrame({
        "item_seq": seq,
        "item_name": _col(df, "ITEM_NAME"),
        "eng_name": _col(df, "ITEM_ENG_NAME"),
        "entp_name": _col(df, "ENTP_NAME"),
        "etc_otc": _col(df, "ETC_OTC_NAME"),
        "class_no": _col(df, "CLASS_NO"),
        "class_name": _col(df, "CLASS_NAME"),
        "form": _col(df, "FORM_CODE_NAME"),
        "chart": _col(df, "CHART"),
        "permit_date": _col(df, "ITEM_PERMIT_DATE"),
        "source": "pill_identification",
    })
    return items, app


def _item_rows(df: pd.DataFrame, prefix: str, source: str) -> pd.DataFrame:
    p = prefix
    return pd.DataFrame({
        "item_seq": _col(df, f"{p}ITEM_SEQ"),
        "item_name": _col(df, f"{p}ITEM_NAME"),
        "eng_name": _col(df, f"{p}ITEM_ENG_NAME"),
        "entp_name": _col(df, f"{p}ENTP_NAME"),
        "etc_otc": _col(df, f"{p}ETC_OTC_NAME").fillna(_col(df, f"{p}ETC_OTC_CODE")),
        "class_no": _col(df, f"{p}CLASS_CODE"),
        "class_name": _col(df, f"{p}CLASS_NAME"),
        "form": _col(df, f"{p}FORM_CODE_NAME").fillna(_col(df, f"{p}FORM_NAME")),
        "chart": _col(df, f"{p}CHART"),
        "permit_date": _col(df, f"{p}ITEM_PERMIT_DATE"),
        "source": source,
    })


def _main_ingr_rows(item_seqs: pd.Series, main_ingr: pd.Series, source: str, ori: pd.DataFrame) -> pd.DataFrame:
    """A product's complete main-ingredient list (M-codes) -> ingredient rows, DUR code where one exists."""
    rows = [(seq, m, name) for seq, val in zip(item_seqs, main_ingr) if seq for m, name in split_coded_names(val)]
    df = pd.DataFrame(rows, columns=["item_seq", "m_code", "ingr_name"]).drop_duplicates(["item_seq", "m_code"])
    ambiguous = set(ori.groupby("m_code").size().loc[lambda s: s > 1].index)
    df = df.merge(ori[["m_code", "ingr_code"]], on="m_code", how="left")
    df["source"] = source
    df["confidence"] = [0.8 if m in ambiguous else (0.95 if c else 0.9) for m, c in zip(df["m_code"], df["ingr_code"])]
    return df


def build_products(tables: list[SourceTable], ori: pd.DataFrame) -> tuple[list[pd.DataFrame], list[pd.DataFrame], pd.DataFrame]:
    """Item rows and ingredient rows from DUR 품목 dumps, 허가 (permit) data and e약은요; plus 분할주의 rules."""
    items, ingr, splits = [], [], []
    for t in _of_kind(tables, "dur_product"):
        df = t.df
        items.append(_item_rows(df, "", "dur_product"))
        if "MIXTURE_ITEM_SEQ" in df.columns:  # product-level 병용금기 rows name both products
            items.append(_item_rows(df, "MIXTURE_", "dur_product"))
            pairs = (("", "INGR_CODE", "INGR_NAME"), ("MIXTURE_", "MIXTURE_INGR_CODE", "MIXTURE_INGR_NAME"))
        else:
            pairs = (("", "INGR_CODE", "INGR_NAME"),)
        for p, code, name in pairs:
            if code in df.columns:
                ingr.append(pd.DataFrame({
                    "item_seq": _col(df, f"{p}ITEM_SEQ"), "ingr_code": _col(df, code), "m_code": None,
                    "ingr_name": _col(df, name), "source": "dur_product", "confidence": 1.0,
                }).dropna(subset=["ingr_code"]))
            if f"{p}MAIN_INGR" in df.columns:
                ingr.append(_main_ingr_rows(_col(df, f"{p}ITEM_SEQ"), _col(df, f"{p}MAIN_INGR"), "main_ingr", ori))
        if (_col(df, "TYPE_NAME") == "분할주의").any():
            s = df[_col(df, "TYPE_NAME") == "분할주의"]
            splits.append(pd.DataFrame({
                "item_seq": _col(s, "ITEM_SEQ"), "reason": _col(s, "PROHBT_CONTENT"),
                "remark": _col(s, "REMARK"), "notice_date": _col(s, "CHANGE_DATE"),
            }))
    for t in _of_kind(tables, "permit_detail") + _of_kind(tables, "permit_list"):
        items.append(_item_rows(t.df, "", "permit"))
        if t.kind == "permit_detail":
            ingr.append(_main_ingr_rows(_col(t.df, "ITEM_SEQ"), _col(t.df, "MAIN_ITEM_INGR"), "permit", ori))
    split_df = pd.concat(splits, ignore_index=True).drop_duplicates("item_seq") if splits else pd.DataFrame(
        columns=["item_seq", "reason", "remark", "notice_date"])
    return items, ingr, split_df


def _name_parts(item_name: str) -> list[str]:
    parts = []
    for group in re.findall(r"\(([^()]*)\)", item_name or ""):
        for part in re.split(r"[,/·+]", group):
            part = part.strip()
            if part and not _NAME_STOP.search(part):
                parts.append(part)
    return parts


def ingredients_from_names(items: pd.DataFrame, known: set[str], ori: pd.DataFrame,
                           ingredients: pd.DataFrame) -> pd.DataFrame:
    """For products with no ingredient data: the parenthesised ingredient in ITEM_NAME, matched to DUR names.

    An exact name (DUR name or a raw-material name of a single-ingredient rule) scores 0.9, a close fuzzy
    match 0.6-0.85, and a name that matches no DUR ingredient is kept with no code at 0.5.
    """
    index: dict[str, str] = {}
    for code, name in zip(ingredients["ingr_code"], ingredients["kor_name"]):
        index.setdefault(name_key(name), code)
    for code, name in zip(ori["ingr_code"], ori["m_name"]):
        index.setdefault(name_key(name), code)
    index.pop("", None)
    keys = list(index)
    rows = []
    todo = items[~items["item_seq"].isin(known)]
    for seq, name in zip(todo["item_seq"], todo["item_name"]):
        for part in _name_parts(name):
            key = name_key(part)
            if not key:
                continue
            if key in index:
                rows.append((seq, index[key], part, 0.9))
                continue
            hit = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=88)
            if hit:
                rows.append((seq, index[hit[0]], part, round(0.6 + 0.25 * (hit[1] - 88) / 12, 3)))
            else:
                rows.append((seq, None, part, 0.5))
    df = pd.DataFrame(rows, columns=["item_seq", "ingr_code", "ingr_name", "confidence"])
    df["m_code"] = None
    df["source"] = "name"
    return df


# ---------------------------------------------------------------- HIRA reimbursement list
def build_hira(tables: list[SourceTable], items: pd.DataFrame, allrows: pd.DataFrame, ingredients: pd.DataFrame,
               known: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str | None]:
    """The list's rows joined to ITEM_SEQ, each joined product's market row and its ingredient rows (``known``:
    the ingredient rows from products' own official data, which teach the 주성분코드 groups)."""
    lists = _of_kind(tables, "hira_list")
    if not lists:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None
    frames, dates = [], []
    for t in lists:
        df, date = t.df, hira.list_date(t.path.name)
        dates.append(date)
        frames.append(pd.DataFrame({
            "std_cd": _col(df, "STD_CD"), "edi_code": _col(df, "EDI_CODE"), "name": _col(df, "PRODUCT_NAME"),
            "spec": _col(df, "SPEC"), "unit": _col(df, "UNIT"), "price_cap": _num(_col(df, "PRICE_CAP")),
            "entp_name": _col(df, "ENTP_NAME"), "gnl_code": _col(df, "GNL_NM_CD"), "gnl_name": _col(df, "GNL_NM"),
            "route": _col(df, "ROUTE"), "class_no": _col(df, "HIRA_CLASS"), "list_date": date,
        }))
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["edi_code", "name"])
    if rows.empty:
        raise DataFileError(f"{lists[0].path}: the reimbursement list has no rows")
    latest = max((d for d in dates if d), default=None)
    if latest:  # several monthly lists: the newest one says what is on the market
        rows = rows[rows["list_date"].isna() | (rows["list_date"] == latest)]
    edi = [pd.DataFrame({"item_seq": _col(t.df, "ITEM_SEQ"), "edi_code": _col(t.df, "EDI_CODE").str.split(",")})
           .explode("edi_code") for t in tables if {"ITEM_SEQ", "EDI_CODE"} <= set(t.df.columns)]
    edi_pairs = pd.concat(edi, ignore_index=True).assign(edi_code=lambda d: d["edi_code"].str.strip()) if edi else None
    joined = hira.join_items(rows.drop_duplicates(["std_cd", "edi_code"]), items, edi_pairs)
    eng = pd.concat([allrows[["ingr_code", "ingr_eng"]],
                     allrows[["partner_code", "partner_eng"]].set_axis(["ingr_code", "ingr_eng"], axis=1),
                     ingredients[["ingr_code", "eng_name"]].set_axis(["ingr_code", "ingr_eng"], axis=1)])
    names = hira.IngredientNames(eng["ingr_code"], eng["ingr_eng"])
    kor = dict(zip(ingredients["ingr_code"], ingredients["kor_name"]))
    groups = hira.ingredient_groups(joined["gnl_code"], joined["item_seq"], known)
    return joined, hira.item_market(joined), hira.ingredients(joined, names, kor, groups), latest


# ---------------------------------------------------------------- misc tables
def build_misc(tables: list[SourceTable]) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    dose = [t.df for t in _of_kind(tables, "max_dose")]
    if dose:
        d = pd.concat(dose, ignore_index=True)
        out["max_daily_dose"] = pd.DataFrame({
            "m_code": _col(d, "CPNT_CD"), "kor_name": _col(d, "DRUG_CPNT_KOR_NM"), "eng_name": _col(d, "DRUG_CPNT_ENG_NM"),
            "form_code": _col(d, "FOML_CD"), "form_name": _col(d, "FOML_NM"), "route": _col(d, "DOSAGE_ROUTE_CODE"),
            "unit": _col(d, "DAY_MAX_DOSG_QY_UNIT"), "qty": _col(d, "DAY_MAX_DOSG_QY"),
        })
    rec = [t.df for t in _of_kind(tables, "recalls")]
    if rec:
        r = pd.concat(rec, ignore_index=True)
        out["recalls"] = pd.DataFrame({
            "item_seq": _col(r, "ITEM_SEQ"), "product": _col(r, "PRDUCT"), "company": _col(r, "ENTRPS"),
            "reason": _col(r, "RTRVL_RESN"), "enforced": _col(r, "ENFRC_YN"),
            "command_date": _col(r, "RECALL_COMMAND_DATE").fillna(_col(r, "RTRVL_CMMND_DT")),
            "std_cd": _col(r, "STD_CD"),
        })
    easy = [t.df for t in _of_kind(tables, "easy_info")]
    if easy:
        e = pd.concat(easy, ignore_index=True)
        strip = lambda s: s.map(lambda v: re.sub(r"<[^>]+>", "", v) if v else v)  # noqa: E731 (older data had HTML)
        out["easy_info"] = pd.DataFrame({
            "item_seq": _col(e, "itemSeq"), "item_name": _col(e, "itemName"), "entp_name": _col(e, "entpName"),
            "efficacy": strip(_col(e, "efcyQesitm")), "use_method": strip(_col(e, "useMethodQesitm")),
            "warning": strip(_col(e, "atpnWarnQesitm")), "caution": strip(_col(e, "atpnQesitm")),
            "interaction": strip(_col(e, "intrcQesitm")), "side_effect": strip(_col(e, "seQesitm")),
            "storage": strip(_col(e, "depositMethodQesitm")), "updated": _col(e, "updateDe"),
        }).drop_duplicates("item_seq")
    marks = [t.df for t in _of_kind(tables, "marks")]
    if marks:
        m = pd.concat(marks, ignore_index=True)
        out["mark_codes"] = pd.DataFrame({"code": _col(m, "code"), "title": _col(m, "title")}).dropna(
            subset=["code"]).drop_duplicates("code")
    return out


# ---------------------------------------------------------------- build
def _insert(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    if df is None or df.empty:
        return
    cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    frame = df.reindex(columns=cols)
    con.register("_frame", frame)
    con.execute(f"INSERT INTO {table} SELECT * FROM _frame")
    con.unregister("_frame")


def build_database(tables: list[SourceTable], db_path: Path, *, data_kind: str = "official",
                   source_dir: str = "") -> dict[str, int]:
    """Write every table to a new DuckDB file at ``db_path`` (which must not exist). Returns row counts."""
    allrows, rules = build_rules(tables)
    ori = build_ori_map(allrows)
    ingredients = build_ingredients(allrows)
    kor = dict(zip(ingredients["ingr_code"], ingredients["kor_name"].map(name_key)))
    rules["mix_names"] = rules["mix_codes"].map(lambda cs: [kor.get(c) or "" for c in cs])
    rules["partner_mix_names"] = rules["partner_mix_codes"].map(lambda cs: [kor.get(c) or "" for c in cs])
    cat_items, appearance = build_catalog(tables)
    prod_items, prod_ingr, splits = build_products(tables, ori)
    easy = build_misc(tables)
    easy_items = []
    if "easy_info" in easy:
        easy_items.append(easy["easy_info"][["item_seq", "item_name", "entp_name"]].assign(source="easy_info"))
    # Catalog rows first: they win on names; other sources add products the pill catalog lacks.
    items = pd.concat([cat_items, *prod_items, *easy_items], ignore_index=True)
    if items.empty:
        raise DataFileError("no products found (expected the 낱알식별 file or DUR 품목 / 허가 data)")
    items = items.dropna(subset=["item_seq", "item_name"])
    items = (items.groupby("item_seq", sort=False, as_index=False).first())
    items["form_cat"] = items["form"].map(form_category)
    if data_kind == "demo":
        items["source"] = "demo"
    ingr = pd.concat(prod_ingr, ignore_index=True) if prod_ingr else pd.DataFrame(
        columns=["item_seq", "ingr_code", "m_code", "ingr_name", "source", "confidence"])
    ingr = ingr[ingr["item_seq"].isin(set(items["item_seq"]))]
    # Trust in tiers: a product's own official ingredient data; else the HIRA generic name of the product it
    # was joined to; else the ingredient written in its name.
    # When the generic name holds a substance no DUR name matched (HIRA writes 'cyclosporin', the rules
    # 'Cyclosporine'), the name's ingredient stands in for it: coded rows from both, the uncoded HIRA rows dropped.
    hira_rows, market, hira_ingr, hira_date = build_hira(tables, items, allrows, ingredients, ingr)
    complete: set[str] = set()
    if len(hira_ingr):
        hira_ingr = hira_ingr[~hira_ingr["item_seq"].isin(set(ingr["item_seq"]))]
        complete = set(hira_ingr["item_seq"]) - set(hira_ingr.loc[hira_ingr["ingr_code"].isna(), "item_seq"])
    named = ingredients_from_names(items, set(ingr["item_seq"]) | complete, ori, ingredients)
    if len(hira_ingr):
        hira_ingr = hira_ingr[hira_ingr["ingr_code"].notna() | ~hira_ingr["item_seq"].isin(set(named["item_seq"]))]
    ingr = pd.concat([ingr, hira_ingr, named], ignore_index=True)
    ingr = ingr.sort_values("confidence", ascending=False).drop_duplicates(
        ["item_seq", "ingr_code", "m_code", "ingr_name"])

    con = duckdb.connect(str(db_path))
    try:
        con.execute(resources.files("pillcheck.catalog").joinpath("schema.sql").read_text(encoding="utf-8"))
        con.execute("BEGIN")
        _insert(con, "items", items)
        _insert(con, "appearance", appearance)
        _insert(con, "ingredients", ingredients)
        _insert(con, "ori_map", ori)
        _insert(con, "item_ingredients", ingr)
        _insert(con, "dur_rules", rules)
        _insert(con, "split_rules", splits[splits["item_seq"].isin(set(items["item_seq"]))])
        for table, df in easy.items():
            _insert(con, table, df)
        _insert(con, "hira_products", hira_rows)
        _insert(con, "item_market", market)
        meta = {
            "data": data_kind,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_dir": source_dir,
            "rule_sources": ";".join(sorted(set(rules["source"]))),
        }
        if hira_date:
            meta["hira_list_date"] = hira_date
        con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        con.execute(dur.MATERIALIZE)
        con.execute("CREATE INDEX item_ingredients_item ON item_ingredients (item_seq)")
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("items", "appearance", "item_ingredients", "dur_rules", "item_rules", "split_rules",
                            "hira_products", "item_market")}
    finally:
        con.close()
    return counts


def _orphans(db_path: Path) -> list[Path]:
    """Half-built files of imports that were killed (their process is gone): nothing else removes them."""
    out = []
    for f in db_path.parent.glob(f"{db_path.name}.building-*"):
        pid = f.name.rsplit("-", 1)[-1].removesuffix(".wal")
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            out.append(f)
        except PermissionError:  # alive, someone else's
            pass
    return out


def import_dir(src: Path | list[Path], db_path: Path, *, data_kind: str = "official") -> dict[str, int]:
    """Read every official file under ``src`` (one folder or several) and atomically replace ``db_path``."""
    t0 = time.perf_counter()
    dirs = [Path(d) for d in (src if isinstance(src, list) else [src])]
    tables: list[SourceTable] = []
    for d in dirs:
        found, skipped = read_dir(d)
        tables.extend(found)
        for p in skipped:
            log.info("not an official data file, skipped: %s", p)
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(f"{db_path.name}.building-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}.wal"), *_orphans(db_path)):
        leftover.unlink(missing_ok=True)
    try:
        counts = build_database(tables, tmp, data_kind=data_kind,
                                source_dir=";".join(str(d.resolve()) for d in dirs))
        os.replace(tmp, db_path)  # atomic on one filesystem: readers see the old file or the new one
        Path(f"{db_path}.wal").unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    counts["seconds"] = round(time.perf_counter() - t0, 2)
    return counts
