-- pillcheck catalog: the whole data model in one file.
-- Every code is TEXT (leading zeros matter: CLASS_NO 01140, ITEM_SEQ, D-codes, M-codes).
-- The importer fills staging DataFrames, then inserts into these tables inside one transaction.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- One row per product (ITEM_SEQ). Products known only from DUR/permit data have no appearance rows.
CREATE TABLE items (
    item_seq     TEXT PRIMARY KEY,
    item_name    TEXT NOT NULL,
    eng_name     TEXT,
    entp_name    TEXT,
    etc_otc      TEXT,          -- 전문의약품 / 일반의약품 ...
    class_no     TEXT,          -- 약효분류 (CLASS_NO)
    class_name   TEXT,
    form         TEXT,          -- 제형코드명 (FORM_CODE_NAME)
    form_cat     TEXT NOT NULL, -- oral / injection / topical: decides DUR form scope
    chart        TEXT,          -- 성상 (free text)
    permit_date  TEXT,
    source       TEXT NOT NULL  -- pill_identification / dur_product / permit / easy_info / demo
);

-- 낱알식별: one row per (ITEM_SEQ, image). Imprints kept raw and normalised (see catalog/normalize.py).
CREATE TABLE appearance (
    item_seq       TEXT NOT NULL,
    image_url      TEXT,
    print_front    TEXT,
    print_back     TEXT,
    norm_front     TEXT NOT NULL,
    norm_back      TEXT NOT NULL,
    shape          TEXT,
    color_front    TEXT,
    color_back     TEXT,
    line_front     TEXT,
    line_back      TEXT,
    leng_long      DOUBLE,
    leng_short     DOUBLE,
    thick          DOUBLE,
    mark_front     TEXT,
    mark_back      TEXT,
    mark_text_front TEXT,
    mark_text_back  TEXT,
    form           TEXT
);

-- DUR ingredient codes (D######) with names, from every rule source.
CREATE TABLE ingredients (
    ingr_code TEXT PRIMARY KEY,
    kor_name  TEXT,
    eng_name  TEXT
);

-- Raw-material code (M/I-code) -> DUR ingredient, built only from single-ingredient (단일) rules (FORMATS.md §1).
CREATE TABLE ori_map (
    m_code    TEXT NOT NULL,
    ingr_code TEXT NOT NULL,
    m_name    TEXT
);

-- Which ingredients a product contains. ingr_code is NULL for ingredients that have no DUR code
-- (known by raw-material code or name only): the item is still "checked", it just has no rule for them.
CREATE TABLE item_ingredients (
    item_seq   TEXT NOT NULL,
    ingr_code  TEXT,
    m_code     TEXT,
    ingr_name  TEXT,
    source     TEXT NOT NULL,   -- dur_product / main_ingr / permit / hira / name
    confidence DOUBLE NOT NULL
);

-- Every active DUR ingredient rule. Lists are '/'-split codes.
CREATE TABLE dur_rules (
    rule_id        INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,   -- CONTRAINDICATED AGE PREGNANCY DOSE DURATION ELDERLY DUPLICATE_THERAPY EXCIPIENT
    type_name      TEXT NOT NULL,   -- official 한글 type
    dur_seq        TEXT,
    mix_type       TEXT,            -- 단일 / 복합
    ingr_code      TEXT NOT NULL,
    ingr_name      TEXT,
    mix_codes      TEXT[],          -- 복합: partner ingredients that must be in the same product
    mix_names      TEXT[],          -- their names as name keys (same order), for salt/hydrate variants
    partner_code   TEXT,            -- 병용금기 partner ingredient
    partner_name   TEXT,
    partner_mix_type TEXT,
    class_name     TEXT,            -- 약효분류 of the ingredient, e.g. '[06290]기타의 화학요법제'
    partner_class  TEXT,
    partner_mix_codes TEXT[],
    partner_mix_names TEXT[],
    form_scope     TEXT,
    form_cats      TEXT[],          -- categories the rule applies to; NULL = every form
    grade          TEXT,            -- 임부금기 1등급/2등급
    age_base       TEXT,            -- 특정연령대금기 text, e.g. '18세 이하'
    age_op         TEXT,            -- '<' '<=' '>' '>='
    age_years      DOUBLE,
    max_qty        TEXT,
    max_days       TEXT,
    effect_group   TEXT,            -- 효능군
    series         TEXT,            -- 계열
    reason         TEXT,
    remark         TEXT,
    notice_date    TEXT,
    source         TEXT NOT NULL    -- file the rule came from
);

-- Product-level 서방정 분할주의 (no ingredient rule exists for it).
CREATE TABLE split_rules (
    item_seq    TEXT NOT NULL,
    reason      TEXT,
    remark      TEXT,
    notice_date TEXT
);

CREATE TABLE max_daily_dose (
    m_code  TEXT, kor_name TEXT, eng_name TEXT, form_code TEXT, form_name TEXT,
    route   TEXT, unit TEXT, qty TEXT
);

CREATE TABLE recalls (
    item_seq TEXT, product TEXT, company TEXT, reason TEXT, enforced TEXT, command_date TEXT,
    std_cd   TEXT                -- the recalled packages' barcodes (표준코드), comma-separated
);

CREATE TABLE easy_info (
    item_seq TEXT PRIMARY KEY, item_name TEXT, entp_name TEXT,
    efficacy TEXT, use_method TEXT, warning TEXT, caution TEXT, interaction TEXT,
    side_effect TEXT, storage TEXT, updated TEXT
);

-- HIRA 약제급여목록: one row per listed package (표준코드 = the package barcode), joined to ITEM_SEQ where the
-- name join is unambiguous (catalog/hira.py). 주성분코드 (gnl_code) = ingredient + strength + route + form.
CREATE TABLE hira_products (
    std_cd      TEXT,
    edi_code    TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT,
    unit        TEXT,
    price_cap   DOUBLE,
    entp_name   TEXT,
    gnl_code    TEXT,
    gnl_name    TEXT,
    route       TEXT,
    class_no    TEXT,
    item_seq    TEXT,           -- NULL: not joined (ambiguous, or not in the catalog)
    join_method TEXT,           -- edi / name / name_company
    list_date   TEXT            -- the month of the list, e.g. 2026-04
);

-- Market status of catalog products: on the reimbursement list of meta.hira_list_date. Products sharing gnl_code
-- are interchangeable for every DUR check (same ingredient, strength, route and form).
CREATE TABLE item_market (
    item_seq    TEXT PRIMARY KEY,
    gnl_code    TEXT,
    gnl_name    TEXT,
    join_method TEXT NOT NULL
);

CREATE TABLE mark_codes (
    code TEXT PRIMARY KEY, title TEXT
);

-- item_rules (items -> ingredients -> applicable rules) is a TABLE created by safety/dur.py (MATERIALIZE) at
-- the end of the import: which rules apply to a product never depends on the other products, and a table
-- with an index keeps a 10-item check in single-digit milliseconds where a view took ~20 ms.
