"""Read every official file kind into DataFrames with API field names, and say what each one is.

Three spellings of the same data exist (FORMATS.md): nedrug bulk files with Korean headers, OpenAPI dumps as
CSV, and OpenAPI JSON pages. Each is read as text and renamed to one canonical set of field names, then
classified by the columns it carries, so the importer never cares where a table came from.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


class DataFileError(ValueError):
    """A source file that cannot be used; the message names the file and the problem."""


# nedrug 낱알식별 (xls/csv) Korean header -> API field.
CATALOG_KO = {
    "품목일련번호": "ITEM_SEQ", "품목명": "ITEM_NAME", "업소일련번호": "ENTP_SEQ", "업소명": "ENTP_NAME",
    "성상": "CHART", "큰제품이미지": "ITEM_IMAGE", "표시앞": "PRINT_FRONT", "표시뒤": "PRINT_BACK",
    "의약품제형": "DRUG_SHAPE", "색상앞": "COLOR_CLASS1", "색상뒤": "COLOR_CLASS2", "분할선앞": "LINE_FRONT",
    "분할선뒤": "LINE_BACK", "크기장축": "LENG_LONG", "크기단축": "LENG_SHORT", "크기두께": "THICK",
    "이미지생성일자(약학정보원)": "IMG_REGIST_TS", "분류번호": "CLASS_NO", "분류명": "CLASS_NAME",
    "전문일반구분": "ETC_OTC_NAME", "품목허가일자": "ITEM_PERMIT_DATE", "제형코드명": "FORM_CODE_NAME",
    "표기내용앞": "MARK_CODE_FRONT_ANAL", "표기내용뒤": "MARK_CODE_BACK_ANAL", "표기이미지앞": "MARK_CODE_FRONT_IMG",
    "표기이미지뒤": "MARK_CODE_BACK_IMG", "표기코드앞": "MARK_CODE_FRONT", "표기코드뒤": "MARK_CODE_BACK",
    "변경일자": "CHANGE_DATE",
}

# nedrug DUR 성분 (A–I files) Korean header -> canonical field.
DUR_KO = {
    "DUR일련번호": "DUR_SEQ", "DUR유형": "TYPE_NAME", "단일복합구분코드": "MIX_TYPE", "DUR성분코드": "INGR_CODE",
    "DUR성분명영문": "INGR_ENG_NAME", "DUR성분명": "INGR_NAME", "복합제": "MIX_INGR", "관계성분": "ORI_INGR",
    "약효분류코드": "CLASS_NAME", "효능군": "EFFECT_CODE", "고시일자": "NOTIFICATION_DATE", "금기내용": "PROHBT_CONTENT",
    "제형": "FORM_NAME", "연령기준": "AGE_BASE", "최대투여기간": "MAX_DOSAGE_TERM", "1일최대용량": "MAX_QTY",
    "등급": "GRADE", "병용금기단일복합구분코드": "MIXTURE_MIX_TYPE", "병용금기DUR성분코드": "MIXTURE_INGR_CODE",
    "병용금기DUR성분영문명": "MIXTURE_INGR_ENG_NAME", "병용금기DUR성분명": "MIXTURE_INGR_NAME",
    "병용금기복합제": "MIXTURE_MIX_INGR", "병용금기관계성분": "MIXTURE_ORI_INGR", "병용금기약효분류": "MIXTURE_CLASS_NAME",
    "비고": "REMARK", "상태": "DEL_YN", "계열명": "SERS_NAME",
}

# HIRA 약제급여목록 (as HIRA and the 약가마스터 publish it) Korean header -> canonical field.
HIRA_KO = {
    "표준코드": "STD_CD", "제품코드": "EDI_CODE", "제품명": "PRODUCT_NAME", "규격": "SPEC", "단위": "UNIT",
    "상한금액": "PRICE_CAP", "업체명": "ENTP_NAME", "주성분코드": "GNL_NM_CD", "주성분명": "GNL_NM", "투여": "ROUTE",
    "분류": "HIRA_CLASS",
}

# The 병용금기 API spells some fields differently from the other six DUR operations.
API_ALIASES = {
    "INGR_KOR_NAME": "INGR_NAME", "MIX": "MIX_INGR", "ORI": "ORI_INGR", "CLASS": "CLASS_NAME",
    "MIXTURE_INGR_KOR_NAME": "MIXTURE_INGR_NAME", "MIXTURE_MIX": "MIXTURE_MIX_INGR", "MIXTURE_ORI": "MIXTURE_ORI_INGR",
    "MIXTURE_CLASS": "MIXTURE_CLASS_NAME",
}

# kind -> columns that identify it (all must be present). Checked in order: the first match wins.
KINDS: list[tuple[str, set[str], set[str]]] = [
    # (kind, required columns, columns that must be absent)
    ("catalog", {"ITEM_SEQ", "ITEM_NAME", "PRINT_FRONT", "DRUG_SHAPE"}, set()),
    ("hira_list", {"EDI_CODE", "PRODUCT_NAME", "GNL_NM_CD"}, set()),
    ("dur_rule", {"TYPE_NAME", "INGR_CODE", "INGR_NAME"}, {"ITEM_SEQ"}),
    ("dur_product", {"TYPE_NAME", "ITEM_SEQ", "ITEM_NAME"}, set()),
    ("permit_detail", {"ITEM_SEQ", "ITEM_NAME", "MAIN_ITEM_INGR"}, set()),
    ("permit_list", {"ITEM_SEQ", "ITEM_NAME", "ITEM_INGR_NAME"}, set()),
    ("easy_info", {"itemSeq", "itemName", "efcyQesitm"}, set()),
    ("max_dose", {"CPNT_CD", "DAY_MAX_DOSG_QY"}, set()),
    ("recalls", {"ITEM_SEQ", "RTRVL_RESN"}, set()),
    ("marks", {"code", "title"}, set()),
]

# File names the official sources use: a file with such a name that does not parse is an error, not a skip.
KNOWN_NAMES = ("OpenData_PotOpen", "dur_", "drug_max_dosage", "medicine_recalls", "mark_codes", "mark_image_data",
               "drug_prices")

MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class SourceTable:
    kind: str
    path: Path
    df: pd.DataFrame
    origin: str = "api"  # "nedrug" for the bulk files with Korean headers, else "api" (OpenAPI CSV/JSON)


def classify(columns: list[str]) -> str | None:
    cols = set(columns)
    for kind, need, absent in KINDS:
        if need <= cols and not (absent & cols):
            return kind
    return None


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns=lambda c: str(c).replace("\ufeff", "").strip())
    if "DUR일련번호" in df.columns or "DUR성분코드" in df.columns:
        df = df.rename(columns=DUR_KO)
    elif "품목일련번호" in df.columns:
        df = df.rename(columns=CATALOG_KO)
    elif "주성분코드" in df.columns and "제품코드" in df.columns:
        df = df.rename(columns=HIRA_KO)
    df = df.rename(columns=API_ALIASES)
    df = df.loc[:, [c for c in df.columns if c and not c.startswith(("Unnamed", "column"))]]
    return df.astype(object).where(df.notna(), None)


def _decode(raw: bytes, path: Path) -> str:
    for enc in ("utf-8-sig", "cp949"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DataFileError(f"{path}: not UTF-8 or CP949 text")


def _read_csv(path: Path) -> pd.DataFrame:
    text = _decode(path.read_bytes(), path)
    first = text.split("\n", 1)[0]
    # nedrug DUR 성분 files: never quoted, literal '"' inside fields, commas inside text replaced by '|'.
    quoting = csv.QUOTE_NONE if first.startswith("DUR일련번호") else csv.QUOTE_MINIMAL
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, quoting=quoting)
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DataFileError(f"{path}: malformed CSV ({exc})") from exc


def _read_excel(path: Path) -> pd.DataFrame:
    # The official 낱알식별 '.xls' is really an xlsx (zip) file.
    if not zipfile.is_zipfile(path):
        raise DataFileError(f"{path}: expected an xlsx workbook (zip); the file is not one")
    try:
        with zipfile.ZipFile(path) as zf:
            if sum(i.file_size for i in zf.infolist()) > MAX_FILE_BYTES:
                raise DataFileError(f"{path}: workbook unpacks to more than {MAX_FILE_BYTES >> 20} MiB")
        return pd.read_excel(path, dtype=str, engine="calamine")
    except DataFileError:
        raise
    except Exception as exc:  # calamine raises its own error types for damaged workbooks
        raise DataFileError(f"{path}: unreadable workbook ({exc})") from exc


def json_items(payload: object, path: Path) -> list[dict] | None:
    """Items of an OpenAPI response (any envelope); None when the payload is not an API response."""
    if isinstance(payload, list):
        return [x for x in payload if isinstance(x, dict)]
    if not isinstance(payload, dict):
        return None
    if "response" in payload and isinstance(payload["response"], dict):  # HIRA-style wrapper
        payload = payload["response"]
    header, body = payload.get("header"), payload.get("body")
    if not isinstance(body, dict):
        return None
    if isinstance(header, dict) and str(header.get("resultCode", "00")) not in ("00", "0"):
        raise DataFileError(f"{path}: API error {header.get('resultCode')} {header.get('resultMsg')}")
    items = body.get("items")
    if items is None or items == "":
        return []
    if isinstance(items, dict):  # older versions: {"item": {...}} or {"item": [...]} for few hits
        items = items.get("item", items)
    if isinstance(items, dict):
        items = [items]
    return [x for x in items if isinstance(x, dict)]


def _read_json(path: Path) -> pd.DataFrame:
    try:
        payload = json.loads(_decode(path.read_bytes(), path))
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    items = json_items(payload, path)
    if items is None:
        raise DataFileError(f"{path}: JSON is not an OpenAPI response (no header/body)")
    return pd.DataFrame(items, dtype=object)


READERS = {".csv": _read_csv, ".json": _read_json, ".xls": _read_excel, ".xlsx": _read_excel}


def read_source(path: Path) -> SourceTable | None:
    """Read one file. None for a file that is not an official source (e.g. a README, an unrelated CSV)."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        return None
    known = path.name.startswith(KNOWN_NAMES)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataFileError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
    raw = reader(path)
    origin = "nedrug" if any(str(c).lstrip("\ufeff")[:1] >= "\uac00" or "DUR일련번호" in str(c) for c in raw.columns) else "api"
    df = _canonical(raw)
    if df.empty and len(df.columns) == 0:
        return SourceTable("empty", path, df)
    kind = classify(list(df.columns))
    if kind is None:
        if known:
            raise DataFileError(f"{path}: unexpected columns {list(df.columns)[:8]}… for an official file")
        return None
    return SourceTable(kind, path, df, origin)


def read_dir(root: Path) -> tuple[list[SourceTable], list[Path]]:
    """Every official table under ``root`` (recursively) and the files that were passed over."""
    if not root.is_dir():
        raise DataFileError(f"{root}: not a directory")
    tables, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        table = read_source(path)
        if table is None:
            skipped.append(path)
        elif table.kind != "empty":
            tables.append(table)
    return tables, skipped
